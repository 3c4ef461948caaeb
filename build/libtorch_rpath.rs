//! Build script of the crates whose binaries link LibTorch (`launch`, `policy`, `video-pretrain`):
//! with their `libtorch` feature (on by default in `launch`), it records where LibTorch's shared
//! libraries are (the folder torch-sys linked against, which it reports to its direct dependents
//! as `DEP_TCH_LIBTORCH_LIB`) as the run-time search path of the crate's binaries and tests, so
//! that they start without `LD_LIBRARY_PATH`.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if std::env::var_os("CARGO_FEATURE_LIBTORCH").is_none() {
        return;
    }
    match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(dir) if !dir.is_empty() => println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}"),
        _ => println!(
            "cargo:warning=torch-sys did not report LibTorch's library folder: run the binary with it on LD_LIBRARY_PATH"
        ),
    }
}
