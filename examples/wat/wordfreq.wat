;; Prints the ten most frequent words of stdin, the same program as the Rust,
;; C and AssemblyScript guests: words are runs of ASCII letters, folded to
;; lowercase; ties go to the word first in byte order. Written by hand
;; against WASI preview 1; the grid runs the text file as it is.
;;
;;   echo "a b a" | grid-cli run examples/wat/wordfreq.wat
;;
;; Memory: 0..12 an iovec and a byte count for WASI calls, 32 a newline,
;; 64..96 a number being printed, 128 the error message; from 1024 stdin,
;; then a hash table of 16-byte entries (word pointer, word length, count)
;; at least twice as large as the number of words stdin can hold.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 32) "\n")
  (data (i32.const 128) "error: stdin or stdout failed\n")

  (global $input i32 (i32.const 1024))
  (global $table (mut i32) (i32.const 0))
  (global $mask (mut i32) (i32.const 0))

  (func $fail
    (i32.store (i32.const 0) (i32.const 128))
    (i32.store (i32.const 4) (i32.const 30))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 1)))

  ;; Makes linear memory at least `end` bytes long.
  (func $reserve (param $end i32)
    (local $pages i32)
    (local.set $pages (i32.sub (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
                               (memory.size)))
    (if (i32.gt_s (local.get $pages) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $pages)) (i32.const -1)) (then (call $fail))))))

  ;; Reads all of stdin to $input and returns its length.
  (func $read_stdin (result i32)
    (local $len i32)
    (loop $more
      (call $reserve (i32.add (i32.add (global.get $input) (local.get $len)) (i32.const 65536)))
      (i32.store (i32.const 0) (i32.add (global.get $input) (local.get $len)))
      (i32.store (i32.const 4) (i32.const 65536))
      (if (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)) (then (call $fail)))
      (if (i32.load (i32.const 8))
        (then (local.set $len (i32.add (local.get $len) (i32.load (i32.const 8)))) (br $more))))
    (local.get $len))

  (func $write_all (param $ptr i32) (param $len i32)
    (loop $more
      (if (i32.gt_s (local.get $len) (i32.const 0))
        (then
          (i32.store (i32.const 0) (local.get $ptr))
          (i32.store (i32.const 4) (local.get $len))
          (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)) (then (call $fail)))
          (local.set $ptr (i32.add (local.get $ptr) (i32.load (i32.const 8))))
          (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 8))))
          (br $more)))))

  (func $is_letter (param $c i32) (result i32)
    (i32.lt_u (i32.sub (i32.or (local.get $c) (i32.const 0x20)) (i32.const 97)) (i32.const 26)))

  ;; Compares two words bytewise: negative, zero or positive.
  (func $compare (param $a i32) (param $alen i32) (param $b i32) (param $blen i32) (result i32)
    (local $i i32) (local $n i32) (local $d i32)
    (local.set $n (select (local.get $alen) (local.get $blen) (i32.lt_u (local.get $alen) (local.get $blen))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $d (i32.sub (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                               (i32.load8_u (i32.add (local.get $b) (local.get $i)))))
        (if (local.get $d) (then (return (local.get $d))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.sub (local.get $alen) (local.get $blen)))

  ;; Counts one word, found by its FNV-1a hash with linear probing.
  (func $count (param $ptr i32) (param $len i32) (param $hash i32)
    (local $e i32)
    (loop $probe
      (local.set $e (i32.add (global.get $table) (i32.shl (i32.and (local.get $hash) (global.get $mask)) (i32.const 4))))
      (if (i32.eqz (i32.load offset=4 (local.get $e)))
        (then
          (i32.store (local.get $e) (local.get $ptr))
          (i32.store offset=4 (local.get $e) (local.get $len))
          (i32.store offset=8 (local.get $e) (i32.const 1))
          (return)))
      (if (i32.eqz (call $compare (local.get $ptr) (local.get $len)
                                  (i32.load (local.get $e)) (i32.load offset=4 (local.get $e))))
        (then
          (i32.store offset=8 (local.get $e) (i32.add (i32.load offset=8 (local.get $e)) (i32.const 1)))
          (return)))
      (local.set $hash (i32.add (local.get $hash) (i32.const 1)))
      (br $probe)))

  ;; Prints `<count> <word>\n` for the entry at $e.
  (func $print (param $e i32)
    (local $n i32) (local $pos i32)
    (local.set $n (i32.load offset=8 (local.get $e)))
    (local.set $pos (i32.const 95))
    (i32.store8 (i32.const 95) (i32.const 32))
    (loop $digit
      (local.set $pos (i32.sub (local.get $pos) (i32.const 1)))
      (i32.store8 (local.get $pos) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digit (local.get $n)))
    (call $write_all (local.get $pos) (i32.sub (i32.const 96) (local.get $pos)))
    (call $write_all (i32.load (local.get $e)) (i32.load offset=4 (local.get $e)))
    (call $write_all (i32.const 32) (i32.const 1)))

  (func (export "_start")
    (local $len i32) (local $cap i32) (local $i i32) (local $c i32) (local $start i32) (local $hash i32)
    (local $rank i32) (local $e i32) (local $best i32) (local $end i32)
    (local.set $len (call $read_stdin))
    ;; A table at least twice as large as the number of words can be.
    (local.set $cap (i32.const 16))
    (loop $double
      (if (i32.le_u (local.get $cap) (i32.add (local.get $len) (i32.const 2)))
        (then (local.set $cap (i32.shl (local.get $cap) (i32.const 1))) (br $double))))
    (global.set $mask (i32.sub (local.get $cap) (i32.const 1)))
    (global.set $table (i32.and (i32.add (i32.add (global.get $input) (local.get $len)) (i32.const 15)) (i32.const -16)))
    (local.set $end (i32.add (global.get $table) (i32.shl (local.get $cap) (i32.const 4))))
    (call $reserve (local.get $end))
    (memory.fill (global.get $table) (i32.const 0) (i32.shl (local.get $cap) (i32.const 4)))

    (block $scanned
      (loop $scan
        (br_if $scanned (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $c (i32.load8_u (i32.add (global.get $input) (local.get $i))))
        (if (i32.eqz (call $is_letter (local.get $c)))
          (then (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $scan)))
        (local.set $start (local.get $i))
        (local.set $hash (i32.const 0x811c9dc5))
        (block $word_end
          (loop $letter
            (br_if $word_end (i32.ge_u (local.get $i) (local.get $len)))
            (local.set $c (i32.load8_u (i32.add (global.get $input) (local.get $i))))
            (br_if $word_end (i32.eqz (call $is_letter (local.get $c))))
            (local.set $c (i32.or (local.get $c) (i32.const 0x20)))
            (i32.store8 (i32.add (global.get $input) (local.get $i)) (local.get $c))
            (local.set $hash (i32.mul (i32.xor (local.get $hash) (local.get $c)) (i32.const 0x01000193)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $letter)))
        (call $count (i32.add (global.get $input) (local.get $start)) (i32.sub (local.get $i) (local.get $start))
                     (local.get $hash))
        (br $scan)))

    ;; Ten times: the entry with the highest count (then the smallest word)
    ;; is printed, and its count zeroed so the next pass skips it.
    (block $ranked
      (loop $next_rank
        (br_if $ranked (i32.ge_u (local.get $rank) (i32.const 10)))
        (local.set $best (i32.const 0))
        (local.set $e (global.get $table))
        (loop $entry
          (if (i32.load offset=8 (local.get $e))
            (then
              (if (i32.or
                    (i32.eqz (local.get $best))
                    (i32.or
                      (i32.gt_u (i32.load offset=8 (local.get $e)) (i32.load offset=8 (local.get $best)))
                      (i32.and
                        (i32.eq (i32.load offset=8 (local.get $e)) (i32.load offset=8 (local.get $best)))
                        (i32.lt_s (call $compare (i32.load (local.get $e)) (i32.load offset=4 (local.get $e))
                                                 (i32.load (local.get $best)) (i32.load offset=4 (local.get $best)))
                                  (i32.const 0)))))
                (then (local.set $best (local.get $e))))))
          (local.set $e (i32.add (local.get $e) (i32.const 16)))
          (br_if $entry (i32.lt_u (local.get $e) (local.get $end))))
        (br_if $ranked (i32.eqz (local.get $best)))
        (call $print (local.get $best))
        (i32.store offset=8 (local.get $best) (i32.const 0))
        (local.set $rank (i32.add (local.get $rank) (i32.const 1)))
        (br $next_rank)))))
