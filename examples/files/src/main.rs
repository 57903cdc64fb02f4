//! Reads and writes a mapped directory: for every `*.txt` file in DIR
//! (default `/data`) writes an uppercased copy to `DIR/upper/`, removes every
//! `*.tmp` file, and writes `DIR/summary.txt`.
//!
//! `grid-cli run --dir ./mydata::/data target/wasm32-wasip1/release/files.wasm`

use guest_sdk::args::Args;
use guest_sdk::fs::Dir;

fn main() {
    guest_sdk::run(|| {
        let args = Args::from_env();
        let dir = Dir::open(args.get(0).unwrap_or("/data"))?;
        let (mut count, mut bytes) = (0, 0);
        for name in dir.files()? {
            if name.ends_with(".txt") && name != "summary.txt" {
                let text = dir.read_to_string(&name)?;
                dir.write(format!("upper/{name}"), text.to_uppercase())?;
                count += 1;
                bytes += text.len();
                println!("{name}: {} bytes", text.len());
            } else if name.ends_with(".tmp") {
                dir.remove(&name)?;
                println!("{name}: removed");
            }
        }
        dir.write("summary.txt", format!("{count} files, {bytes} bytes\n"))?;
        Ok(())
    })
}
