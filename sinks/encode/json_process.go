package encode

import "github.com/audisp-enrich/audisp-enrich/plugin/audit"

// processContext writes the process context the process table found
// beyond process.parent: ancestry (when more than the parent is known),
// container, systemd and cgroup. The chain and the cgroup facts are
// shared by the events of one parent (audit.Enrichment): each part is
// written again from the bytes kept for the last event with the same
// chain or facts (listRun).
func (e *Full) processContext(w *Writer, ev *audit.Event) {
	if len(ev.Ancestry) > 1 {
		e.ancestry(w, ev.Ancestry)
	}
	if ev.Cgroup != nil {
		e.cgroupFacts(w, ev.Cgroup)
	}
}

// ancestry writes the member "ancestry".
func (e *Full) ancestry(w *Writer, chain []*audit.Process) {
	if e.chain.put(e, chain) {
		return
	}
	m, escaped := w.mark(), len(e.escaped)
	w.Key("ancestry")
	w.OpenArray()
	for _, p := range chain {
		w.Open()
		w.Key("pid")
		w.Int(int64(p.PID))
		e.optVal(w, "executable", p.Executable, "ancestry.executable")
		e.optVal(w, "comm", p.Comm, "ancestry.comm")
		w.Close()
	}
	w.CloseArray()
	e.chain.keep(e, chain, m, escaped)
}

// cgroupFacts writes the members container, systemd and cgroup (each
// when known).
func (e *Full) cgroupFacts(w *Writer, cg *audit.Cgroup) {
	if e.cgroup.put(e, one(cg)) {
		return
	}
	m, escaped := w.mark(), len(e.escaped)
	if cg.ContainerID != "" {
		w.Key("container")
		w.Open()
		w.Key("id")
		e.val(w, cg.ContainerID, "container.id", "")
		e.optVal(w, "runtime", cg.Runtime, "container.runtime")
		e.optVal(w, "pod_uid", cg.PodUID, "container.pod_uid")
		w.Close()
	}
	if cg.Unit != "" {
		w.Key("systemd")
		w.Open()
		w.Key("unit")
		e.val(w, cg.Unit, "systemd.unit", "")
		e.optVal(w, "user_id", cg.UserOf, "systemd.user_id")
		w.Close()
	}
	e.optVal(w, "cgroup", cg.Path, "cgroup")
	e.cgroup.keep(e, one(cg), m, escaped)
}
