package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decode is the first step, and touches nothing but the bytes: the YAML
// read into a typed Config, the defaults filled in, and every mistake of
// the file named at once. Unknown keys and values of the wrong type are
// reported, the rest of the file is read leniently and validated too (a
// key with a type error is not reported twice). The config is nil only
// when the bytes are not YAML. Resolve then checks it against the host.
func Decode(data []byte, name string) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: name, Key: "(file)", Msg: "empty: want at least station_uuid, data_dir, platform, buses and piles (see configs/example.yaml)"}}
		}
		return nil, Errors{syntaxError(name, data, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, Errors{{File: name, Key: "(file)", Msg: fmt.Sprintf("a second YAML document at line %d: one file holds one config", extra.Line)}}
	}
	var c Config
	var errs Errors
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&c); err != nil {
		paths, keys := lineIndex(&root)
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, Errors{syntaxError(name, data, err)}
		}
		for _, m := range te.Errors {
			errs = append(errs, typeError(name, m, paths, keys))
		}
		c = Config{}
		_ = yaml.Unmarshal(data, &c) // what can be read; its type errors are the ones above
	}
	c.defaults()
	typed := map[string]bool{}
	for _, e := range errs {
		typed[e.Key] = true
	}
	for _, e := range c.validate() {
		if !typed[e.Key] {
			errs = append(errs, e)
		}
	}
	for _, e := range errs {
		e.File = name
	}
	if len(errs) > 0 {
		return &c, errs
	}
	return &c, nil
}

var (
	uuidRe    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	lineRe    = regexp.MustCompile(`^line (\d+):`)
	unknownRe = regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+`)
	dupRe     = regexp.MustCompile(`line (\d+): mapping key "([^"]+)" already defined at line (\d+)`)
	typeRe    = regexp.MustCompile("line (\\d+): cannot unmarshal !!(\\w+) `([^`]*)` into (\\S+)")
)

// lineIndex maps each line of the file to what starts there, for naming
// keys in YAML's errors: the dotted paths of the values (type errors) and
// of the keys (unknown keys), in one walk of the tree.
func lineIndex(root *yaml.Node) (values map[int][]pathAt, keys map[int][]string) {
	values, keys = map[int][]pathAt{}, map[int][]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, k := range n.Content {
				walk(k, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + p
				}
				keys[k.Line] = append(keys[k.Line], p)
				values[v.Line] = append(values[v.Line], pathAt{p, v.Value})
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, v := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				values[v.Line] = append(values[v.Line], pathAt{p, v.Value})
				walk(v, p)
			}
		}
	}
	walk(root, "")
	return values, keys
}

type pathAt struct{ path, value string }

// syntaxError says what the YAML parser could not read: a key given twice,
// a tab where YAML wants spaces, or the parser's own words.
func syntaxError(file string, data []byte, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := dupRe.FindStringSubmatch(msg); m != nil {
		return dupError(file, m)
	}
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		lines := strings.Split(string(data), "\n")
		// the parser names the line it stopped at: the tab is there or
		// just before
		for _, i := range []int{n - 1, n - 2} {
			if i >= 0 && i < len(lines) && strings.Contains(lines[i], "\t") {
				return &Error{File: file, Key: fmt.Sprintf("line %d", i+1),
					Msg: "a tab character: YAML indents with spaces only; replace the tab with spaces (the parser said: " + msg + ")"}
			}
		}
	}
	return &Error{File: file, Key: "(yaml)", Msg: msg}
}

func dupError(file string, m []string) *Error {
	return &Error{File: file, Key: m[2], Msg: fmt.Sprintf("given twice (lines %s and %s)", m[3], m[1])}
}

// typeError names the key of one YAML type error: its full path, and for
// an unknown key the known key it is closest to.
func typeError(file, msg string, paths map[int][]pathAt, keys map[int][]string) *Error {
	if m := dupRe.FindStringSubmatch(msg); m != nil {
		return dupError(file, m)
	}
	if m := unknownRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		key := m[2]
		for _, p := range keys[line] {
			if p == m[2] || strings.HasSuffix(p, "."+m[2]) {
				key = p
				break
			}
		}
		msg := "unknown key (line " + m[1] + ")"
		if s := suggest(key); s != "" {
			msg += fmt.Sprintf("; did you mean %s?", s)
		}
		return &Error{File: file, Key: key, Msg: msg}
	}
	m := typeRe.FindStringSubmatch(msg)
	if m == nil {
		return &Error{File: file, Key: "(yaml)", Msg: msg}
	}
	line, _ := strconv.Atoi(m[1])
	key := "line " + m[1]
	for _, p := range paths[line] {
		if p.value == m[3] {
			key = p.path
			break
		}
	}
	want := map[string]string{
		"time.Duration": "want a duration such as 500ms, 30s or 2m",
		"int":           "want a whole number", "int64": "want a whole number", "bool": "want true or false",
		"string": "want text", "uint8": "want a whole number",
	}[m[4]]
	if want == "" {
		want = "want " + strings.TrimPrefix(m[4], "config.")
	}
	if strings.HasPrefix(m[4], "[]") {
		want = "want a list"
	} else if strings.HasPrefix(m[4], "config.") || strings.HasPrefix(m[4], "map[") {
		want = "want a mapping (key: value)"
	}
	return &Error{File: file, Key: key, Msg: fmt.Sprintf("%s: %s", m[3], want)}
}
