// Package imatest holds the real-IMA end-to-end test of audisp-enrich.
//
// TestIMA boots Debian's stock kernel (CONFIG_IMA=y) under QEMU with software
// emulation, runs a real auditd inside the guest with audisp-enrich started
// from plugins.d exactly as in production, executes files whose SHA-256 the
// host computed beforehand, and checks the plugin's JSON output on the host,
// hash by hash. The package has no code outside its tests; docs/ima-test.md
// explains how it works and how to run it against another kernel.
package imatest
