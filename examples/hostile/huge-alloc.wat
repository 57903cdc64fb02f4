;; Asks for 4 GiB of memory at once: ends by its memory limit.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (memory.grow (i32.const 65535)))))
