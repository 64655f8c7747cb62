package proc

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// ParseCgroupFile returns what the content of a /proc/<pid>/cgroup file
// says about the process: its container and its systemd unit. Each line is
// "hierarchy-id:controllers:path". The unit is taken from the cgroup v2
// line ("0::path") when it names one, else from the v1 name=systemd line,
// else from any other line; the container from the first line, in that
// order, whose path names one (Docker with the cgroupfs driver on a v1
// host without the name=systemd hierarchy shows its container only in the
// controller hierarchies). Path is the path the container came from, else
// the unit's, else the v2 (else name=systemd) path. Lines that do not have
// that shape are skipped. The result shares no memory with b.
func ParseCgroupFile(b []byte) audit.Cgroup {
	var v2, systemd string
	var others []string
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		// The path may hold colons: split at the first two only.
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			continue
		}
		j := bytes.IndexByte(line[i+1:], ':')
		if j < 0 {
			continue
		}
		ctl, path := line[i+1:i+1+j], string(line[i+2+j:])
		switch {
		case string(line[:i]) == "0" && len(ctl) == 0:
			v2 = path
		case string(ctl) == "name=systemd":
			systemd = path
		default:
			others = append(others, path)
		}
	}
	var cg audit.Cgroup
	unitPath := ""
	for _, p := range append([]string{v2, systemd}, others...) {
		if p == "" {
			continue
		}
		c := ParseCgroupPath(p)
		if cg.Unit == "" && c.Unit != "" {
			cg.Unit, cg.UserOf, unitPath = c.Unit, c.UserOf, p
		}
		if cg.ContainerID == "" && c.ContainerID != "" {
			cg.ContainerID, cg.Runtime, cg.PodUID, cg.Path = c.ContainerID, c.Runtime, c.PodUID, p
		}
	}
	for _, p := range [...]string{unitPath, v2, systemd} {
		if cg.Path == "" {
			cg.Path = p
		}
	}
	return cg
}

// scopePrefixes are the prefixes of the systemd scope (or, with the
// cgroupfs driver, plain cgroup) that a container runtime makes for a
// container, "<prefix><64 hex>[.scope]", with the runtime's ECS name.
// The runtimes' monitor processes (libpod-conmon-, crio-conmon-) are not
// in a container and do not match: their id part is not 64 hex digits.
var scopePrefixes = [...]struct{ prefix, runtime string }{
	{"docker-", "docker"},
	{"cri-containerd-", "containerd"},
	{"crio-", "cri-o"},
	{"libpod-", "podman"},
	{"nerdctl-", "containerd"}, // standalone containerd (nerdctl)
}

// ParseCgroupPath returns what one cgroup path says: the container (its
// 64-hex-digit id, the runtime when the path names it, the Kubernetes pod
// uid) and the systemd unit (the deepest "*.service" component; below a
// user manager "user@UID.service" it is a user unit of UID). The shapes
// known are those of Docker, containerd and CRI-O under Kubernetes, and
// Podman, with the systemd and cgroupfs drivers, on cgroup v1 and v2:
//
//	/system.slice/docker-<id>.scope                  docker (systemd driver)
//	/docker/<id>                                     docker (cgroupfs driver)
//	/machine.slice/libpod-<id>.scope[/container]     podman
//	/user.slice/.../user@1000.service/.../libpod-<id>.scope   rootless podman
//	/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope
//	/kubepods.slice/.../crio-<id>.scope              CRI-O
//	/kubepods/<qos>/pod<uid>/<id>                    Kubernetes, cgroupfs driver (runtime unknown)
//	/system.slice/nerdctl-<id>.scope                 containerd (nerdctl)
//	/system.slice/containerd.service/kubepods-<qos>-pod<uid>.slice:cri-containerd:<id>
//
// The last is a kubelet with the systemd driver over a containerd that
// runs runc with the cgroupfs one (SystemdCgroup off): runc makes the
// "slice:prefix:id" name it is given below containerd's own cgroup. The
// container's cgroup is then not the runtime's unit: the unit above it is
// dropped. A path with none of these shapes has no container. The
// result's strings are substrings of path.
func ParseCgroupPath(path string) audit.Cgroup {
	cg := audit.Cgroup{Path: path}
	var prev string
	kube := false
	userOf := ""
	for rest := path; rest != ""; {
		var c string
		c, rest, _ = strings.Cut(rest, "/")
		if c == "" {
			continue
		}
		switch {
		case strings.HasPrefix(c, "kubepods") || kube && strings.HasPrefix(c, "pod"):
			kube = true
			slice, _, _ := strings.Cut(c, ":")
			if uid, ok := podUID(slice); ok {
				cg.PodUID = uid
			}
		case strings.HasSuffix(c, ".service"):
			if u, ok := strings.CutPrefix(c, "user@"); ok && userOf == "" && isDigits(strings.TrimSuffix(u, ".service")) {
				userOf = strings.TrimSuffix(u, ".service")
				cg.Unit, cg.UserOf = c, ""
			} else {
				cg.Unit, cg.UserOf = c, userOf
			}
		}
		if id, rt, ok := containerOf(c, prev, kube); ok {
			cg.ContainerID, cg.Runtime = id, rt
			if strings.IndexByte(c, ':') >= 0 {
				cg.Unit, cg.UserOf = "", ""
			}
		}
		prev = c
	}
	if cg.ContainerID == "" {
		cg.PodUID = ""
	}
	return cg
}

// containerOf reports whether cgroup component c (below component prev)
// is a container's, and its id and runtime.
func containerOf(c, prev string, kube bool) (id, runtime string, ok bool) {
	if slice, rest, found := strings.Cut(c, ":"); found && strings.HasSuffix(slice, ".slice") {
		// slice:prefix:id, as runc names a systemd-style cgroups path
		// with the cgroupfs driver
		prefix, id, _ := strings.Cut(rest, ":")
		for _, p := range scopePrefixes {
			if p.prefix == prefix+"-" && isHex64(id) {
				return id, p.runtime, true
			}
		}
		return "", "", false
	}
	for _, p := range scopePrefixes {
		if s, found := strings.CutPrefix(c, p.prefix); found {
			s = strings.TrimSuffix(s, ".scope")
			if isHex64(s) {
				return s, p.runtime, true
			}
		}
	}
	if !isHex64(c) {
		return "", "", false
	}
	switch {
	case prev == "docker":
		return c, "docker", true
	case kube && strings.HasPrefix(prev, "pod"):
		return c, "", true
	}
	return "", "", false
}

// podUID returns the pod uid of a Kubernetes pod cgroup component:
// "pod<uid>" (cgroupfs driver) or "kubepods[-<qos>]-pod<uid with _ for
// ->.slice" (systemd driver), in its usual dashed form.
func podUID(c string) (string, bool) {
	i := strings.LastIndex(c, "pod")
	if i < 0 || (i > 0 && c[i-1] != '-') {
		return "", false
	}
	u := strings.TrimSuffix(c[i+3:], ".slice")
	if len(u) != 36 {
		return "", false
	}
	u = strings.ReplaceAll(u, "_", "-")
	for j := 0; j < len(u); j++ {
		ch := u[j]
		if j == 8 || j == 13 || j == 18 || j == 23 {
			if ch != '-' {
				return "", false
			}
		} else if !isHexDigit(ch) {
			return "", false
		}
	}
	return u, true
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isRuntime reports whether the program called name (an executable's base
// name, or a comm: "containerd-shim" is the kernel's 15 bytes of
// containerd-shim-runc-v2) is a container runtime or its shim or monitor
// (containerd-shim*, runc, crun, conmon): a process that runs outside the
// containers whose processes it starts, so that its cgroup says nothing of
// theirs.
func isRuntime(name string) bool {
	switch name {
	case "runc", "crun", "conmon":
		return true
	}
	return strings.HasPrefix(name, "containerd-shim")
}

// maxCgroupFile bounds how much of a /proc/<pid>/cgroup file is read
// (a cgroup v1 host with long Kubernetes paths has about 3 KiB).
const maxCgroupFile = 8 << 10

// maxCgroups bounds the distinct cgroup files a cgroupCache holds; when it
// is full the cache starts over (the images holding parsed files keep
// them).
const maxCgroups = 1024

// cgroupCache reads /proc/<pid>/cgroup files and hands out one parsed
// value per distinct content, so that the images of a cgroup share it.
// It is safe for concurrent use.
type cgroupCache struct {
	mu     sync.Mutex
	byFile map[string]*audit.Cgroup
	bufs   sync.Pool
}

func newCgroupCache() *cgroupCache {
	return &cgroupCache{
		byFile: make(map[string]*audit.Cgroup),
		bufs:   sync.Pool{New: func() any { b := make([]byte, maxCgroupFile); return &b }},
	}
}

// read returns the parsed /proc/<pid>/cgroup under root, or nil when it
// cannot be read or names no cgroup; gone reports that it could not be
// read because the process does not exist (any more).
func (c *cgroupCache) read(root string, pid int) (cg *audit.Cgroup, gone bool) {
	bp := c.bufs.Get().(*[]byte)
	defer c.bufs.Put(bp)
	n, err := readInto(root+"/"+strconv.Itoa(pid)+"/cgroup", *bp)
	if err != nil {
		return nil, errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH)
	}
	return c.intern((*bp)[:n]), false
}

// intern returns the shared parsed value of the file content b.
func (c *cgroupCache) intern(b []byte) *audit.Cgroup {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cg, ok := c.byFile[string(b)]; ok {
		return cg
	}
	cg := ParseCgroupFile(b)
	if cg.Path == "" {
		return nil
	}
	if len(c.byFile) >= maxCgroups {
		clear(c.byFile)
	}
	p := &cg
	c.byFile[string(b)] = p
	return p
}
