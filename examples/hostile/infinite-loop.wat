;; Never stops: ends by its fuel limit or its timeout, whichever comes first.
(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $l (br $l))))
