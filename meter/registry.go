package meter

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

//go:embed profiles/*.yaml
var embedded embed.FS

// Registry holds the profiles by name: the embedded defaults, overridden by
// same-named files in the user's profiles_dir.
type Registry struct {
	byName map[string]*Profile
}

// LoadRegistry loads the embedded profiles, then every *.yaml in userDir
// (if set). A bad file fails the load with its name and line.
func LoadRegistry(userDir string) (*Registry, error) {
	r := &Registry{byName: map[string]*Profile{}}
	files, err := fs.Glob(embedded, "profiles/*.yaml")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		data, err := embedded.ReadFile(f)
		if err != nil {
			return nil, err
		}
		p, err := ParseProfile(data, "embedded:"+f)
		if err != nil {
			return nil, err
		}
		if err := r.add(p, false); err != nil {
			return nil, err
		}
	}
	if userDir == "" {
		return r, nil
	}
	entries, err := os.ReadDir(userDir)
	if err != nil {
		return nil, fmt.Errorf("profiles_dir: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			continue
		}
		path := filepath.Join(userDir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", path, err)
		}
		p, err := ParseProfile(data, path)
		if err != nil {
			return nil, err
		}
		if err := r.add(p, true); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *Registry) add(p *Profile, override bool) error {
	if old, ok := r.byName[p.Name]; ok && (!override || !strings.HasPrefix(old.Source, "embedded:")) {
		return fmt.Errorf("profile %s: name %q already defined in %s", p.Source, p.Name, old.Source)
	}
	r.byName[p.Name] = p
	return nil
}

// Get returns the named profile.
func (r *Registry) Get(name string) (*Profile, error) {
	p, ok := r.byName[name]
	if !ok {
		return nil, fmt.Errorf("no profile named %q (have: %s)", name, strings.Join(r.Names(), ", "))
	}
	return p, nil
}

// Names lists the profile names, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.byName))
	for n := range r.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
