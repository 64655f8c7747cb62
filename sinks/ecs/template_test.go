package ecs_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks/ecs"
)

// TestIndexTemplate: the Elasticsearch/OpenSearch index template maps
// every field the profile writes (its mapping is strict, so an unmapped
// field would be rejected at indexing), with the ECS type for ECS fields
// and a type that takes the value for the others.
func TestIndexTemplate(t *testing.T) {
	fields := audittest.ECSFieldsOrSkip(t)
	root, _ := testsupport.ModuleRoot()
	mapped := templateMappings(t)
	for path, typ := range mapped {
		if strings.HasPrefix(path, "audisp_enrich.") {
			continue
		}
		if f, ok := fields[path]; !ok || f.Type != typ {
			t.Errorf("template maps %s as %s; ECS says %q", path, typ, f.Type)
		}
	}
	// Every leaf of every document of the capture, with all options.
	used := map[string]bool{}
	for _, ev := range events(t, filepath.Join(root, "plugin/testdata/capture.log")) {
		for _, opts := range []ecs.Options{{}, {Original: true, References: true, Host: "h"}} {
			for path := range checkMapped(t, mapped, ecs.Encode(nil, ev, opts)) {
				used[path] = true
			}
		}
		// The capture is replayed without package trust: give each
		// event the fullest package answer (relocated) so that its
		// fields are checked too.
		withPkg := *ev
		withPkg.Package = &audit.PackageResult{Status: "relocated", Manager: "dpkg", Name: "coreutils", Version: "9.1-1", OriginalPath: "/usr/bin/ls"}
		for path := range checkMapped(t, mapped, ecs.Encode(nil, &withPkg, ecs.Options{})) {
			used[path] = true
		}
	}
	for _, p := range []string{"process.parent.pid", "threat.technique.subtechnique.id", "event.original", "audisp_enrich.hunt.rule", "audisp_enrich.package.original_path"} {
		if !used[p] {
			t.Errorf("the capture never wrote %s: the check above missed it", p)
		}
	}
}

// templateMappings returns the leaf fields docs/ecs-index-template.json
// maps, with their types; it checks that the mapping is strict.
func templateMappings(t *testing.T) map[string]string {
	t.Helper()
	root, _ := testsupport.ModuleRoot()
	data, err := os.ReadFile(filepath.Join(root, "docs/ecs-index-template.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tpl struct {
		Template struct {
			Mappings struct {
				Dynamic    string         `json:"dynamic"`
				Properties map[string]any `json:"properties"`
			} `json:"mappings"`
		} `json:"template"`
	}
	if err := json.Unmarshal(data, &tpl); err != nil {
		t.Fatal(err)
	}
	mapped := map[string]string{}
	var walk func(prefix string, props map[string]any)
	walk = func(prefix string, props map[string]any) {
		for k, v := range props {
			m := v.(map[string]any)
			if sub, ok := m["properties"].(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			mapped[prefix+k] = m["type"].(string)
		}
	}
	walk("", tpl.Template.Mappings.Properties)
	if tpl.Template.Mappings.Dynamic != "strict" {
		t.Errorf("dynamic = %q, want strict", tpl.Template.Mappings.Dynamic)
	}
	return mapped
}

// checkMapped fails the test when a leaf of the document doc is not in
// mapped or has another JSON type than its mapping, and returns the leaf
// paths.
func checkMapped(t *testing.T, mapped map[string]string, doc []byte) map[string]bool {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var d map[string]any
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	leaves("", d, func(path string, v any) {
		used[path] = true
		typ, ok := mapped[path]
		if !ok {
			t.Fatalf("%s is written but not mapped", path)
		}
		if _, isNum := v.(json.Number); isNum != (typ == "long") && typ != "date" {
			t.Fatalf("%s = %v is mapped as %s", path, v, typ)
		}
	})
	return used
}

func leaves(prefix string, v any, f func(string, any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			leaves(prefix+k+".", e, f)
		}
	case []any:
		for _, e := range x {
			leaves(prefix, e, f)
		}
	default:
		f(strings.TrimSuffix(prefix, "."), v)
	}
}
