"use strict";
// What the tests share: the package under test (the checkout, or the installed tarball when
// TWILIO_SIGNATURE_PACKAGE names it) and the project's vectors.
const fs = require("fs");
const path = require("path");

const pkg = require(process.env.TWILIO_SIGNATURE_PACKAGE || path.join(__dirname, ".."));
const VECTORS_DIR = process.env.TWILIO_SIGNATURE_VECTORS || path.join(__dirname, "..", "..", "tests", "vectors");

function loadJson(name) {
  return JSON.parse(fs.readFileSync(path.join(VECTORS_DIR, name), "utf8"));
}

function requirePackage(sub) {
  const base = process.env.TWILIO_SIGNATURE_PACKAGE || path.join(__dirname, "..");
  return require(sub ? `${base}/${sub}` : base);
}

module.exports = { pkg, loadJson, requirePackage };
