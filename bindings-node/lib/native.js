"use strict";
// Loads the platform's prebuilt Node-API addon. The package ships one binary, linux-x64-gnu; on any
// other platform the error says which platform this is and how to build the addon from source.
const fs = require("fs");
const path = require("path");

const ROOT = path.join(__dirname, "..");

/** "gnu" or "musl" on Linux (the addon is linked against glibc), else "". */
function libc() {
  if (process.platform !== "linux") return "";
  const report = typeof process.report?.getReport === "function" ? process.report.getReport() : null;
  return report && report.header && report.header.glibcVersionRuntime ? "gnu" : "musl";
}

function platformName() {
  const abi = libc();
  return `${process.platform}-${process.arch}${abi ? "-" + abi : ""}`;
}

function load() {
  const platform = platformName();
  // TWILIO_SIGNATURE_NATIVE: an addon built from source (cargo build --release -p twilio-signature-node
  // writes target/release/libtwilio_signature_node.so).
  const override = process.env.TWILIO_SIGNATURE_NATIVE;
  const file = override || path.join(ROOT, `twilio-signature.${platform}.node`);
  if (!fs.existsSync(file)) {
    throw new Error(
      `twilio-signature: no prebuilt native addon for ${platform} (this package ships linux-x64-gnu). ` +
        "Build it from source: in a checkout of the twilio-signature repository run " +
        "`cargo build --release -p twilio-signature-node` (Rust 1.88+), then either copy " +
        `target/release/libtwilio_signature_node.so (.dylib on macOS, .dll on Windows) to ${path.join(ROOT, `twilio-signature.${platform}.node`)} ` +
        "or set TWILIO_SIGNATURE_NATIVE to its path."
    );
  }
  const addon = { exports: {} };
  try {
    process.dlopen(addon, file);
  } catch (error) {
    throw new Error(`twilio-signature: the native addon ${file} does not load on ${platform}: ${error.message}`);
  }
  return addon.exports;
}

module.exports = load();
