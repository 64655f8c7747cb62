package plugin_test

import (
	"os"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
)

// validateFile validates every line of a JSON Lines file against the
// output schema.
func validateFile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	audittest.ValidateJSONLines(t, b)
}
