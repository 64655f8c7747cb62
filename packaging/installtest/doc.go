// Package installtest proves the packages built by `make package`: the
// .deb is installed on this machine with dpkg, runs under a real auditd
// that reads the system plugins.d directory, and is purged without a
// trace; the .rpm is inspected with rpm and installed into a --root
// directory. The tests need root, dpkg, rpm and Debian's auditd package,
// and they change the machine (a disposable test machine or CI runner):
// every test purges what it installed, also when it fails. Under
// go test -short those tests skip; what stays is cheap: the packaged
// config loads, and `make help` lists every Makefile target.
package installtest
