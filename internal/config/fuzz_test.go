package config

import (
	"errors"
	"strings"
	"testing"
)

// Any file: a config or named errors, never a panic, never the secret in
// an error; the same bytes always give the same answer. Decode is pure:
// the fuzzer touches no file of the host.
func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(""))
	f.Add([]byte(base + "---\nx: 1\n"))
	f.Add([]byte("platform: {timeout: 500}\nbuses: [{name: a, device: 'tcp://h'}]\n"))
	f.Add([]byte(strings.Replace(base, "slave: 1", "slave: [1]", 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data, "f.yaml")
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
		if _, err2 := Decode(data, "f.yaml"); err2 != nil {
			t.Fatalf("accepted once, refused the second time: %v", err2)
		}
		_ = c
	})
}

// Decode names the file's own mistakes and nothing of the host: a data_dir
// under a file, a secret file that does not exist and a credentials
// directory are Resolve's to see.
func TestDecodeTouchesNothingOfTheHost(t *testing.T) {
	doc := strings.Replace(base, "app_secret: sec", "app_secret_file: /nonexistent/app_secret", 1)
	doc = strings.Replace(doc, "data_dir: ", "data_dir: /etc/hostname/data # was ", 1)
	t.Setenv("CREDENTIALS_DIRECTORY", "/nonexistent")
	c, err := Decode([]byte(doc+priced), "c.yaml")
	if err != nil {
		t.Fatalf("Decode looked at the host: %v", err)
	}
	errs := c.Resolve()
	if len(errs) != 2 || !strings.Contains(errs.Error(), "data_dir: /etc/hostname/data cannot be created") || !strings.Contains(errs.Error(), "app_secret_file: /nonexistent/app_secret does not exist") {
		t.Fatalf("Resolve: %v", errs)
	}
}
