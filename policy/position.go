package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// Position is a 1-based line and column in the policy file.
type Position struct {
	Line   int
	Column int
}

// positions maps a dotted key to the place it is first written. Keys name tables the way
// the decoded Policy sees them: "default_tier", "tier.sandboxed.fallback",
// "rule[0].match.images[1]", "rule[0].match.labels.team".
type positions map[string]Position

// lookup returns the position of key, or of its nearest ancestor that has one (a missing
// key is reported where its table starts).
func (ps positions) lookup(key string) Position {
	for key != "" {
		if pos, ok := ps[key]; ok {
			return pos
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return Position{}
}

// keyAt returns the key written at line:col, with array indexes ("rule[2].nme"), or def.
func (ps positions) keyAt(line, col int, def string) string {
	best := ""
	for key, pos := range ps {
		// Of the keys starting there, the longest is the one the error is about.
		if pos.Line == line && pos.Column == col && len(key) > len(best) {
			best = key
		}
	}
	if best == "" {
		return def
	}
	return best
}

// indexPositions records where each key of a syntactically valid document stands. It uses
// go-toml's AST parser, which sees the same document the decoder does.
func indexPositions(data []byte) positions {
	ix := &indexer{ps: positions{}, arrays: map[string]int{}, lines: []int{0}}
	for i, c := range data {
		if c == '\n' {
			ix.lines = append(ix.lines, i+1)
		}
	}
	ix.p.Reset(data)
	for ix.p.NextExpression() {
		e := ix.p.Expression()
		switch e.Kind {
		case unstable.Table:
			parts, pos := ix.key(e.Key())
			ix.table = ix.resolve(parts)
			ix.record(ix.table, pos)
		case unstable.ArrayTable:
			parts, pos := ix.key(e.Key())
			base := ix.resolve(parts[:len(parts)-1])
			base = join(base, parts[len(parts)-1])
			ix.table = fmt.Sprintf("%s[%d]", base, ix.arrays[base])
			ix.arrays[base]++
			ix.record(ix.table, pos)
		case unstable.KeyValue:
			ix.keyValue(ix.table, e)
		}
	}
	return ix.ps
}

type indexer struct {
	p      unstable.Parser
	ps     positions
	table  string         // the current [table] or [[array table]] element
	arrays map[string]int // elements seen so far per array-of-tables key
	lines  []int          // offset of the first byte of each line
}

// key returns the parts of a (possibly dotted) key and the position of its first part.
func (ix *indexer) key(it unstable.Iterator) ([]string, Position) {
	var parts []string
	var pos Position
	for it.Next() {
		n := it.Node()
		if parts == nil {
			pos = ix.pos(n)
		}
		parts = append(parts, string(n.Data))
	}
	return parts, pos
}

// resolve turns header parts into a key, descending into the last element of an array of
// tables ([rule.match] after the third [[rule]] is "rule[2].match").
func (ix *indexer) resolve(parts []string) string {
	key := ""
	for _, part := range parts {
		key = join(key, part)
		if n, ok := ix.arrays[key]; ok {
			key = fmt.Sprintf("%s[%d]", key, n-1)
		}
	}
	return key
}

func (ix *indexer) keyValue(table string, kv *unstable.Node) {
	parts, pos := ix.key(kv.Key())
	key := table
	for _, part := range parts {
		key = join(key, part)
		ix.record(key, pos)
	}
	ix.value(key, kv.Value())
}

func (ix *indexer) value(key string, v *unstable.Node) {
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if n := it.Node(); n.Kind == unstable.KeyValue {
				ix.keyValue(key, n)
			}
		}
	case unstable.Array:
		i := 0
		it := v.Children()
		for it.Next() {
			n := it.Node()
			if n.Kind == unstable.Comment {
				continue
			}
			elem := fmt.Sprintf("%s[%d]", key, i)
			if n.Raw.Length > 0 {
				ix.record(elem, ix.pos(n))
			}
			ix.value(elem, n)
			i++
		}
	}
}

func (ix *indexer) record(key string, pos Position) {
	if _, ok := ix.ps[key]; !ok {
		ix.ps[key] = pos
	}
}

// pos locates a node. It does not use Parser.Shape, which scans from the start of the
// document on every call and made indexing quadratic in the file size.
func (ix *indexer) pos(n *unstable.Node) Position {
	off := int(n.Raw.Offset)
	line, _ := slices.BinarySearch(ix.lines, off+1) // lines[line-1] <= off < lines[line]
	return Position{Line: line, Column: off - ix.lines[line-1] + 1}
}

func join(prefix, part string) string {
	if prefix == "" {
		return part
	}
	return prefix + "." + part
}
