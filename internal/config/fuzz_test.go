package config

import (
	"errors"
	"strings"
	"testing"
)

// Any file: a config or named errors, never a panic, never the secret in
// an error; the same bytes always give the same answer.
func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(""))
	f.Add([]byte(base + "---\nx: 1\n"))
	f.Add([]byte("platform: {timeout: 500}\nbuses: [{name: a, device: 'tcp://h'}]\n"))
	f.Add([]byte(strings.Replace(base, "slave: 1", "slave: [1]", 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "f.yaml")
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("not named errors: %v", err)
			}
			for _, e := range es {
				if e.Key == "" {
					t.Fatalf("an error without a key: %v", e)
				}
			}
			if strings.Contains(string(data), "app_secret: sec") && strings.Contains(err.Error(), "sec\"") {
				t.Fatal("the secret in an error")
			}
			return
		}
		if _, err2 := Parse(data, "f.yaml"); err2 != nil {
			t.Fatalf("accepted once, refused the second time: %v", err2)
		}
		_ = c
	})
}
