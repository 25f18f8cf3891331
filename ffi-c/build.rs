//! Gives the shared library an ELF SONAME, `libtwilio_signature.so.<major>`: programs linked against it
//! record that name, so an installed `libtwilio_signature.so.0 -> libtwilio_signature.so.0.1.0` can be
//! upgraded in place and an incompatible major version can sit beside it (see `make install-c`).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    // ELF platforms whose linkers take -soname; macOS names a dylib with -install_name instead.
    if matches!(
        os.as_str(),
        "linux"
            | "android"
            | "freebsd"
            | "netbsd"
            | "openbsd"
            | "dragonfly"
            | "illumos"
            | "solaris"
    ) {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_default();
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libtwilio_signature.so.{major}");
    }
}
