package ecs

import "github.com/audisp-enrich/audisp-enrich/plugin/audit"

// commandLine writes command_line: args joined by single spaces (as Sigma's
// CommandLine is), without building the joined string.
func (w *writer) commandLine(args []string, path string) {
	if len(args) == 0 {
		return
	}
	w.key("command_line")
	w.b = append(w.b, '"')
	for i, a := range args {
		if i > 0 {
			w.b = append(w.b, ' ')
		}
		// AppendJSONString quotes: write it, then drop its quotes.
		mark := len(w.b)
		var ok bool
		if w.b, ok = audit.AppendJSONString(w.b, a); !ok {
			w.esc = append(w.esc, path)
		}
		n := copy(w.b[mark:], w.b[mark+1:len(w.b)-1])
		w.b = w.b[:mark+n]
	}
	w.b = append(w.b, '"')
}

// processContext writes the process's cgroup facts: container.id and
// container.runtime, orchestrator.resource.* for a Kubernetes pod, and
// service.name (the systemd unit).
func (w *writer) processContext(ev *audit.Event) {
	cg := ev.Cgroup
	if cg == nil {
		return
	}
	if cg.ContainerID != "" {
		w.open("container")
		w.str("id", cg.ContainerID, "")
		w.str("runtime", cg.Runtime, "")
		w.close()
		if cg.PodUID != "" {
			w.open("orchestrator")
			w.open("resource")
			w.str("type", "pod", "")
			w.str("id", cg.PodUID, "")
			w.close()
			w.close()
		}
	}
	if cg.Unit != "" {
		w.open("service")
		w.str("name", cg.Unit, "service.name")
		w.close()
	}
}

// ownProcessContext writes, under audisp_enrich, what ECS has no field for:
// ancestry (the executables of the parent and its ancestors, parent first,
// when more than the parent is known) and service_user_id (the uid whose
// user manager runs service.name, for a user unit).
func (w *writer) ownProcessContext(ev *audit.Event) {
	if len(ev.Ancestry) > 1 {
		w.key("ancestry")
		w.b = append(w.b, '[')
		for i, p := range ev.Ancestry {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.value(p.Executable, "audisp_enrich.ancestry")
		}
		w.b = append(w.b, ']')
	}
	if cg := ev.Cgroup; cg != nil && cg.Unit != "" {
		w.str("service_user_id", cg.UserOf, "")
	}
}
