use std::hint::black_box;
use std::time::Instant;
fn main() {
    let body = twilio_signature_bench::SMS_BODY.trim_end();
    let names: Vec<&str> = body
        .split('&')
        .map(|p| p.split('=').next().unwrap())
        .collect();
    let key7 = |n: &str, i: usize| {
        let mut b = [0u8; 8];
        for (k, c) in n.bytes().take(7).enumerate() {
            b[k] = c;
        }
        (u64::from_be_bytes(b) & !0xff) | i as u64
    };
    let keys: Vec<u64> = names.iter().enumerate().map(|(i, n)| key7(n, i)).collect();
    let keys128: Vec<(u128, u64)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut b = [0u8; 16];
            for (k, c) in n.bytes().take(16).enumerate() {
                b[k] = c;
            }
            (u128::from_be_bytes(b), i as u64)
        })
        .collect();
    let n = 5_000_000;
    for _ in 0..2 {
        let t = Instant::now();
        for _ in 0..n {
            let mut k = [0u64; 64];
            let k = &mut k[..keys.len()];
            k.copy_from_slice(black_box(&keys));
            k.sort_unstable();
            black_box(&k);
        }
        println!(
            "u64 sort_unstable: {:.1} ns",
            t.elapsed().as_nanos() as f64 / n as f64
        );
        let t = Instant::now();
        for _ in 0..n {
            let mut k = [0u64; 64];
            let k = &mut k[..keys.len()];
            k.copy_from_slice(black_box(&keys));
            for i in 1..k.len() {
                let c = k[i];
                let mut j = i;
                while j > 0 && k[j - 1] > c {
                    k[j] = k[j - 1];
                    j -= 1;
                }
                k[j] = c;
            }
            black_box(&k);
        }
        println!(
            "u64 insertion: {:.1} ns",
            t.elapsed().as_nanos() as f64 / n as f64
        );
        let t = Instant::now();
        for _ in 0..n {
            let mut k = [(0u128, 0u64); 64];
            let k = &mut k[..keys.len()];
            k.copy_from_slice(black_box(&keys128));
            k.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            black_box(&k);
        }
        println!(
            "u128+idx sort_unstable_by: {:.1} ns",
            t.elapsed().as_nanos() as f64 / n as f64
        );
        let t = Instant::now();
        for _ in 0..n {
            let mut k = [0u64; 64];
            let k = &mut k[..keys.len()];
            k.copy_from_slice(black_box(&keys));
            // branchless insertion: shift via cmov-ish
            for i in 1..k.len() {
                let c = k[i];
                let mut j = i;
                while j > 0 {
                    let p = k[j - 1];
                    let gt = p > c;
                    k[j] = if gt { p } else { c };
                    if !gt {
                        break;
                    }
                    j -= 1;
                }
                if j == 0 {
                    k[0] = c;
                }
            }
            black_box(&k);
        }
        println!(
            "u64 insertion2: {:.1} ns",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
}
