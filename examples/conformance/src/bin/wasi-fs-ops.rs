//! Files in a preopened directory: read, write, seek, truncate, stat,
//! rename, make and list directories, remove; and the errors for a missing
//! file and for paths outside every preopen.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

fn listing(dir: &Path) -> String {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names.join(",")
}

fn main() {
    let base = Path::new("/fixture");
    println!("hello.txt: {}", fs::read_to_string(base.join("hello.txt")).unwrap().trim_end());
    println!("sub/nested.txt: {}", fs::read_to_string(base.join("sub/nested.txt")).unwrap().trim_end());

    let path = base.join("new.txt");
    let mut f = fs::OpenOptions::new().create(true).read(true).write(true).truncate(true).open(&path).unwrap();
    f.write_all(b"0123456789").unwrap();
    f.seek(SeekFrom::Start(3)).unwrap();
    let mut four = [0u8; 4];
    f.read_exact(&mut four).unwrap();
    println!("read at 3: {}", std::str::from_utf8(&four).unwrap());
    println!("position: {}", f.stream_position().unwrap());
    println!("length: {}", f.metadata().unwrap().len());
    f.set_len(5).unwrap();
    drop(f);
    println!("truncated to: {}", fs::metadata(&path).unwrap().len());
    println!("is file: {}, is dir: {}", path.is_file(), base.join("sub").is_dir());

    fs::rename(&path, base.join("renamed.txt")).unwrap();
    println!("renamed: {}, old name gone: {}", base.join("renamed.txt").exists(), !path.exists());
    fs::create_dir(base.join("made")).unwrap();
    fs::write(base.join("made/a.txt"), b"a").unwrap();
    println!("listing: {}", listing(base));
    println!("made/: {}", listing(&base.join("made")));
    println!("rmdir of a full dir fails: {}", fs::remove_dir(base.join("made")).is_err());
    fs::remove_file(base.join("made/a.txt")).unwrap();
    fs::remove_dir(base.join("made")).unwrap();
    fs::remove_file(base.join("renamed.txt")).unwrap();
    println!("after removing: {}", listing(base));

    println!("missing: {:?}", fs::read(base.join("nope")).unwrap_err().kind());
    println!("escape by ..: refused {}", fs::read("/fixture/../../etc/passwd").is_err());
    println!("outside every preopen: refused {}", fs::read("/etc/passwd").is_err());
}
