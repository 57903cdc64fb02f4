;; Declares a table of 100 million functions: ends by its memory limit.
(module
  (memory (export "memory") 1)
  (table 100000000 funcref)
  (func (export "_start")))
