package audit

import "strconv"

// appendProcessContext writes the process context the process table found
// beyond process.parent: ancestry (when more than the parent is known),
// container, systemd and cgroup.
func (e *JSONEncoder) appendProcessContext(b []byte, ev *Event) []byte {
	if len(ev.Ancestry) > 1 {
		b = append(b, `,"ancestry":[`...)
		for i, p := range ev.Ancestry {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"pid":`...)
			b = strconv.AppendInt(b, int64(p.PID), 10)
			if p.Executable != "" {
				b = append(b, `,"executable":`...)
				b = e.appendVal(b, p.Executable, "ancestry.executable", "")
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	cg := ev.Cgroup
	if cg == nil {
		return b
	}
	if cg.ContainerID != "" {
		b = append(b, `,"container":{"id":`...)
		b = appendStr(b, cg.ContainerID)
		if cg.Runtime != "" {
			b = append(b, `,"runtime":`...)
			b = appendStr(b, cg.Runtime)
		}
		if cg.PodUID != "" {
			b = append(b, `,"pod_uid":`...)
			b = appendStr(b, cg.PodUID)
		}
		b = append(b, '}')
	}
	if cg.Unit != "" {
		b = append(b, `,"systemd":{"unit":`...)
		b = e.appendVal(b, cg.Unit, "systemd.unit", "")
		if cg.UserOf != "" {
			b = append(b, `,"user_id":`...)
			b = appendStr(b, cg.UserOf)
		}
		b = append(b, '}')
	}
	if cg.Path != "" {
		b = append(b, `,"cgroup":`...)
		b = e.appendVal(b, cg.Path, "cgroup", "")
	}
	return b
}
