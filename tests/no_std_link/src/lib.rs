#![no_std]

use twilio_signature::{Request, Secret, Validator};

/// Exercises verify, sign and explain so none of them can be dropped before linking.
#[no_mangle]
pub extern "C" fn no_std_link_check(url: *const u8, url_len: usize) -> i32 {
    // SAFETY: test harness only; never called, it just has to link.
    let url = unsafe { core::slice::from_raw_parts(url, url_len) };
    let validator = Validator::new(Secret::new(b"12345"));
    let request = Request::post(url, b"a=1").signature(b"RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    let signed = validator.sign(&request).is_ok();
    let verified = validator.verify(&request).is_ok();
    let explained = validator.explain(&request).diagnosis.is_some();
    i32::from(signed) + i32::from(verified) + i32::from(explained)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
