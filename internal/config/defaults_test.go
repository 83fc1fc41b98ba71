package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// readmeMinimal is the first YAML block of the README's "Configure"
// section: the config a new user starts from.
func readmeMinimal(t *testing.T) string {
	data, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	s := string(data)
	i := strings.Index(s, "## Configure")
	require.GreaterOrEqual(t, i, 0)
	s = s[i:]
	i = strings.Index(s, "```yaml\n")
	require.GreaterOrEqual(t, i, 0)
	s = s[i+len("```yaml\n"):]
	return s[:strings.Index(s, "```")]
}

// flatten turns a YAML tree into dotted paths (lists as [i]) -> scalar.
func flatten(n *yaml.Node, path string, out map[string]*yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			flatten(c, path, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if v.Kind == yaml.ScalarNode {
				// the comment may sit on the key or the value
				v.LineComment = k.HeadComment + " " + k.LineComment + " " + v.LineComment
			}
			flatten(v, p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			flatten(c, fmt.Sprintf("%s[%d]", path, i), out)
		}
	case yaml.ScalarNode:
		out[path] = n
	}
}

var defaultNote = regexp.MustCompile(`(?i)default:?\s+([^\s;,)]+)`)

// same compares a documented value with an effective one: as durations
// when both are, else as text.
func same(doc, got string) bool {
	doc = strings.Trim(strings.TrimSuffix(doc, "."), `"`)
	if d1, err := time.ParseDuration(doc); err == nil {
		if d2, err := time.ParseDuration(got); err == nil {
			return d1 == d2
		}
	}
	if doc == "none" || doc == "off" {
		return got == "" || got == "0" || got == "0s" || got == "false" || got == "[]" || got == "{}"
	}
	return doc == got
}

// Every key the README's minimal config leaves out takes the default that
// configs/example.yaml documents for it: the value a "Default: X" or
// "default X" note names, else the value the example shows. One owner for
// every default, and a test that sees a wrong one: a default set in two
// places once made /healthz red forever on the README's own config.
func TestREADMEMinimalConfigTakesTheDocumentedDefaults(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "app_secret")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret\n"), 0o600))
	minimal := readmeMinimal(t)
	doc := strings.NewReplacer("/var/lib/pilebridge", filepath.Join(dir, "data"), "/etc/pilebridge/app_secret", secret).Replace(minimal)
	c, err := Parse([]byte(doc), "README.yaml")
	require.NoError(t, err, "the README's minimal config loads")

	var given yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(minimal), &given))
	set := map[string]*yaml.Node{}
	flatten(&given, "", set)

	out, err := yaml.Marshal(c)
	require.NoError(t, err)
	var effNode yaml.Node
	require.NoError(t, yaml.Unmarshal(out, &effNode))
	eff := map[string]*yaml.Node{}
	flatten(&effNode, "", eff)

	example, err := os.ReadFile("../../configs/example.yaml")
	require.NoError(t, err)
	var exNode yaml.Node
	require.NoError(t, yaml.Unmarshal(example, &exNode))
	ex := map[string]*yaml.Node{}
	flatten(&exNode, "", ex)

	checked := 0
	for path, n := range ex {
		if _, ok := set[path]; ok {
			continue // the README gives it
		}
		if strings.HasPrefix(path, "plates.vins") || strings.HasPrefix(path, "tariff.periods") ||
			strings.HasPrefix(path, "piles[0].ports[1]") || path == "piles[0].name" || path == "piles[0].ports[0].alias" {
			continue // examples of lists and names, not defaults
		}
		want := n.Value
		if ms := defaultNote.FindAllStringSubmatch(n.LineComment, -1); ms != nil {
			want = ms[len(ms)-1][1] // the note nearest the key
		}
		got, ok := eff[path]
		if !ok {
			assert.True(t, same(want, ""), "%s: documented default %q, but the loaded config has no such key", path, want)
			continue
		}
		assert.True(t, same(want, got.Value), "%s: configs/example.yaml documents %q, the README's minimal config gets %q", path, want, got.Value)
		checked++
	}
	assert.Greater(t, checked, 25, "most keys checked")
	t.Logf("%d keys checked against configs/example.yaml", checked)
}
