;; A long but finite computation (10^12 steps): ends by its fuel limit.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (local $i i64)
    (loop $l
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $i) (i64.const 1000000000000))))))
