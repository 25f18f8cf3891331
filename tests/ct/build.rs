fn main() {
    println!("cargo:rerun-if-changed=src/memcheck_shim.c");
    cc::Build::new()
        .file("src/memcheck_shim.c")
        .warnings_into_errors(true)
        .compile("memcheck_shim");
}
