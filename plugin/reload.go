package plugin

import (
	"reflect"
	"strings"

	"github.com/audisp-enrich/audisp-enrich/conf"
)

// reloadedTables are the top-level config tables that SIGHUP applies to
// the running plugin (Pipeline.Reload); [verdicts] is the verdict
// service's and plugin mode ignores it.
var reloadedTables = map[string]bool{"enrich": true, "verdicts": true}

// restartKeys returns the keys (as "log.level,user") whose values differ
// between the config the plugin started with and next, among those that
// SIGHUP does not apply (everything but [enrich] and the [[sink]]
// tables): they take effect only at the next start. "" when none does.
func restartKeys(started, next *conf.Config) string {
	var keys []string
	a, b := reflect.ValueOf(started).Elem(), reflect.ValueOf(next).Elem()
	for i := range a.NumField() {
		key := tomlKey(a.Type().Field(i))
		if key == "" || reloadedTables[key] {
			continue
		}
		fa, fb := a.Field(i), b.Field(i)
		if fa.Kind() != reflect.Struct {
			if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
				keys = append(keys, key)
			}
			continue
		}
		for j := range fa.NumField() {
			sub := tomlKey(fa.Type().Field(j))
			if sub != "" && !reflect.DeepEqual(fa.Field(j).Interface(), fb.Field(j).Interface()) {
				keys = append(keys, key+"."+sub)
			}
		}
	}
	return strings.Join(keys, ",")
}

// tomlKey is the TOML key of a config field, "" for fields that are not
// keys (the [[sink]] list and the file name are tagged "-").
func tomlKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if k == "-" {
		return ""
	}
	return k
}
