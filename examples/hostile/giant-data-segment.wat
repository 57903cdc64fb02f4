;; Declares 3 GiB of memory and a data segment near its end: ends by its
;; memory limit before any code runs.
(module
  (memory (export "memory") 49152)
  (data (i32.const 3221225000) "far away")
  (func (export "_start")))
