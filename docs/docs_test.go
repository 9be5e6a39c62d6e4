// Package docs_test keeps the documentation true: its links resolve, the
// commands it marks as tested run against the real binary and the
// emulator, and the names it gives (variables, metrics, tests, kinds,
// subjects, flags) are the code's. It lives beside the pages it checks, in a
// package of its own, so that `go test ./docs` checks the documentation in
// seconds and `go test ./...` (CI) runs it with everything else.
package docs_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/metrics"
)

// root is the module root, relative to this package's directory.
const root = ".."

// page is one Markdown file, read once.
type page struct {
	path   string // relative to the module root, slash-separated
	lines  []string
	blocks []block
}

// block is a fenced code block, with the marker comment just above it.
type block struct {
	info   string // the fence's info string: sh, go, json, …
	marker string // the HTML comment on the line before the fence, if any
	line   int    // 1-based line of the opening fence
	text   []string
}

func readPage(t *testing.T, rel string) *page {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	p := &page{path: rel, lines: strings.Split(string(data), "\n")}
	var cur *block
	for i, line := range p.lines {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &block{info: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), line: i + 1}
			for j := i - 1; j >= 0; j-- {
				if prev := strings.TrimSpace(p.lines[j]); prev != "" {
					if strings.HasPrefix(prev, "<!--") && strings.HasSuffix(prev, "-->") {
						cur.marker = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(prev, "<!--"), "-->"))
					}
					break
				}
			}
		case cur != nil && trimmed == "```":
			p.blocks = append(p.blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text = append(cur.text, line)
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: code block never closed", rel, cur.line)
	}
	return p
}

// prose returns the page's lines outside code blocks, with their numbers.
func (p *page) prose() map[int]string {
	out := map[int]string{}
	in := false
	for i, line := range p.lines {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			in = !in
			continue
		}
		if !in {
			out[i+1] = line
		}
	}
	return out
}

// docPages are the pages whose links and names are checked: README.md,
// BENCHMARKS.md and docs/*.md (not the generated docs/reference/).
func docPages(t *testing.T) []*page {
	t.Helper()
	names := []string{"README.md", "BENCHMARKS.md"}
	entries, err := os.ReadDir(filepath.Join(root, "docs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".md") {
			names = append(names, "docs/"+e.Name())
		}
	}
	pages := make([]*page, len(names))
	for i, n := range names {
		pages[i] = readPage(t, n)
	}
	return pages
}

var (
	inlineCode = regexp.MustCompile("`[^`]*`")
	mdLink     = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	heading    = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
	htmlAnchor = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
)

// anchors are the #fragments a page offers: GitHub's slugs of its headings
// (duplicates numbered -1, -2, …) and explicit <a id> anchors.
func (p *page) anchors() map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, line := range p.prose() {
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			out[m[1]] = true
		}
		m := heading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s := slug(m[2])
		if n := seen[s]; n > 0 {
			out[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

// slug is GitHub's anchor of a heading: lower case, the text of links and
// code kept, punctuation other than - and _ dropped, spaces made hyphens.
func slug(h string) string {
	h = mdLink.ReplaceAllStringFunc(h, func(l string) string { return l[1:strings.Index(l, "](")] })
	h = strings.ToLower(h)
	var b strings.Builder
	for _, r := range h {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// TestLinksResolve: every relative link of the pages, and its #anchor,
// leads somewhere.
func TestLinksResolve(t *testing.T) {
	t.Parallel()
	anchorsOf := map[string]map[string]bool{}
	for _, p := range docPages(t) {
		for n, line := range p.prose() {
			for _, m := range mdLink.FindAllStringSubmatch(inlineCode.ReplaceAllString(line, "x"), -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				path, anchor, _ := strings.Cut(target, "#")
				file := p.path
				if path != "" {
					file = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(p.path), path)))
				}
				where := fmt.Sprintf("%s:%d: %s", p.path, n, target)
				info, err := os.Stat(filepath.Join(root, filepath.FromSlash(file)))
				switch {
				case err != nil:
					t.Errorf("%s: %s does not exist", where, file)
					continue
				case anchor == "":
					continue
				case info.IsDir() || !strings.HasSuffix(file, ".md"):
					t.Errorf("%s: an anchor into something that is not a Markdown page", where)
					continue
				}
				if anchorsOf[file] == nil {
					anchorsOf[file] = readPage(t, file).anchors()
				}
				if !anchorsOf[file][anchor] {
					t.Errorf("%s: %s has no heading #%s", where, file, anchor)
				}
			}
		}
	}
}

// TestReferencesAreGenerated: each page of docs/reference is what its
// command generates from the code, and no other page is there.
func TestReferencesAreGenerated(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildBinary(t)
	topicOf := map[string]string{"configuration.md": "config", "metrics.md": "metrics", "kinds.md": "kinds"}
	entries, err := os.ReadDir(filepath.Join(root, "docs", "reference"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(topicOf) {
		t.Errorf("docs/reference has %d files, want %d: %v", len(entries), len(topicOf), entries)
	}
	for file, topic := range topicOf {
		regenerate := fmt.Sprintf("go run ./cmd/alert-domains help %s --markdown > docs/reference/%s", topic, file)
		want, err := exec.CommandContext(t.Context(), bin, "help", topic, "--markdown").Output()
		if err != nil {
			t.Fatalf("alert-domains help %s --markdown: %v", topic, err)
		}
		have, err := os.ReadFile(filepath.Join(root, "docs", "reference", file))
		if err != nil || string(have) != string(want) {
			t.Errorf("docs/reference/%s is not what the code generates (%v); regenerate it: %s", file, err, regenerate)
		}
	}
}

// TestSlug pins the anchor rule against headings the pages use.
func TestSlug(t *testing.T) {
	for h, want := range map[string]string{
		"Five minutes to a real tenant":                                "five-minutes-to-a-real-tenant",
		"`alert-domains status`":                                       "alert-domains-status",
		"1. Build":                                                     "1-build",
		"One tenant's backlog never delays another's":                  "one-tenants-backlog-never-delays-anothers",
		"Tenant count: start-up and reload":                            "tenant-count-start-up-and-reload",
		"Terminal answers are not retried; retries honour Retry-After": "terminal-answers-are-not-retried-retries-honour-retry-after",
	} {
		if got := slug(h); got != want {
			t.Errorf("slug(%q) = %q, want %q", h, got, want)
		}
	}
}

// TestReadmeTestCommandIsCI: the README's test command is what .ci/run runs,
// with the race detector and CI's own -count and -timeout.
func TestReadmeTestCommandIsCI(t *testing.T) {
	t.Parallel()
	readme := readPage(t, "README.md")
	var shown string
	for _, b := range readme.blocks {
		for _, line := range b.text {
			if cmd := commandOf(line); strings.HasPrefix(cmd, "go test") && shown == "" {
				shown = cmd
			}
		}
	}
	ci, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ci), "the README's test command with the race detector") {
		t.Errorf(".ci/run no longer says it runs the README's test command")
	}
	var run string
	for line := range strings.SplitSeq(string(ci), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "go test ") {
			run = strings.TrimSpace(line)
			break // the first: the service's module, before cd deploy
		}
	}
	var kept []string
	words := strings.Fields(run)
	for i := 0; i < len(words); i++ {
		switch w := words[i]; {
		case w == "-race", strings.HasPrefix(w, "-count="), strings.HasPrefix(w, "-timeout="):
		case w == "-timeout" || w == "-count":
			i++
		default:
			kept = append(kept, w)
		}
	}
	if !strings.Contains(run, "-race") || strings.Join(kept, " ") != shown {
		t.Errorf("README shows %q; .ci/run runs %q", shown, run)
	}
}

// commandOf is a shell line without its trailing comment.
func commandOf(line string) string {
	cmd, _ := splitComment(line)
	return strings.TrimSpace(cmd)
}

// splitComment cuts a shell line at a # that starts a comment (after white
// space, outside quotes).
func splitComment(line string) (cmd, comment string) {
	var quote rune
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i], strings.TrimSpace(line[i+1:])
		}
	}
	return line, ""
}

// shellLines joins continued lines (ending in \) and drops blank and
// comment-only lines.
func shellLines(text []string) []string {
	var out []string
	cur := ""
	for _, line := range text {
		if strings.HasSuffix(strings.TrimRight(line, " "), `\`) {
			cur += strings.TrimSuffix(strings.TrimRight(line, " "), `\`) + " "
			continue
		}
		line = cur + line
		cur = ""
		if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "#") {
			out = append(out, s)
		}
	}
	return out
}

// words splits a shell command into words: single and double quotes, and
// $NAME or ${NAME} expanded from vars outside single quotes. Pipes,
// redirections and command substitution are not supported.
func words(cmd string, vars map[string]string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	var quote rune
	rs := []rune(cmd)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '$' && i+1 < len(rs) && (rs[i+1] == '{' || rs[i+1] == '_' || unicode.IsLetter(rs[i+1])):
			j, name := i+1, ""
			if rs[j] == '{' {
				end := strings.IndexRune(string(rs[j:]), '}')
				if end < 0 {
					return nil, fmt.Errorf("unclosed ${ in %q", cmd)
				}
				name, j = string(rs[j+1:j+end]), j+end
			} else {
				for j < len(rs) && (rs[j] == '_' || unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j])) {
					j++
				}
				name, j = string(rs[i+1:j]), j-1
			}
			v, ok := vars[name]
			if !ok {
				return nil, fmt.Errorf("$%s is not set in %q", name, cmd)
			}
			cur.WriteString(v)
			inWord, i = true, j
		case quote == '"':
			if r == '"' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.ContainsRune("|<>;&`", r):
			return nil, fmt.Errorf("%q: only plain commands run in a tested block", cmd)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unclosed quote in %q", cmd)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// binaryArgs returns the arguments of an alert-domains command line after
// its leading VAR=value assignments, and false for any other command.
func binaryArgs(ws []string) (assigns, args []string, ok bool) {
	i := 0
	for i < len(ws) && assignment.MatchString(ws[i]) {
		i++
	}
	assigns, ws = ws[:i], ws[i:]
	switch {
	case len(ws) > 0 && ws[0] == "alert-domains":
		return assigns, ws[1:], true
	case len(ws) > 2 && ws[0] == "go" && ws[1] == "run" && ws[2] == "./cmd/alert-domains":
		return assigns, ws[3:], true
	}
	return assigns, nil, false
}

// marker is a parsed <!-- test: NAME; key: value; … --> comment.
type marker struct {
	name    string
	env     string   // the session whose exports this one starts from
	want    []string // texts the session's output must hold
	pending string   // why the session is skipped
}

func parseMarker(s string) (marker, bool) {
	rest, ok := strings.CutPrefix(s, "test:")
	if !ok {
		return marker{}, false
	}
	parts := strings.Split(rest, ";")
	m := marker{name: strings.TrimSpace(parts[0])}
	for _, p := range parts[1:] {
		key, value, _ := strings.Cut(p, ":")
		value = strings.TrimSpace(value)
		switch strings.TrimSpace(key) {
		case "env":
			m.env = value
		case "want":
			m.want = append(m.want, value)
		case "pending":
			m.pending = value
		}
	}
	return m, true
}

// session is the marked blocks of one page that share a name.
type session struct {
	page   string
	marker marker
	blocks []block
}

func sessions(t *testing.T) []*session {
	t.Helper()
	var out []*session
	byName := map[string]*session{}
	for _, p := range docPages(t) {
		for _, b := range p.blocks {
			m, ok := parseMarker(b.marker)
			if !ok {
				continue
			}
			key := p.path + "#" + m.name
			s := byName[key]
			if s == nil {
				s = &session{page: p.path, marker: m}
				byName[key] = s
				out = append(out, s)
			} else {
				s.marker.want = append(s.marker.want, m.want...)
			}
			s.blocks = append(s.blocks, b)
		}
	}
	return out
}

// exportsOf are the export lines of a session's blocks.
func (s *session) exportLines() []string {
	var out []string
	for _, b := range s.blocks {
		for _, line := range shellLines(b.text) {
			if cmd := commandOf(line); strings.HasPrefix(cmd, "export ") {
				out = append(out, cmd)
			}
		}
	}
	return out
}

// background are the commands that run until interrupted, and the output
// line that says each is ready.
var background = map[string]*regexp.Regexp{
	"emulate": regexp.MustCompile(`listening on https://`),
	"serve":   regexp.MustCompile(`"msg":"ready"|\bready\b.*request_subject=`),
	"tail":    regexp.MustCompile(`\s(success|failure)\s|"status":`),
}

var exitStatus = regexp.MustCompile(`exit status (\d+)`)

// TestMarkedCommands runs every block marked <!-- test: NAME -->, a session
// per page and NAME, with the real binary (see docs/development.md for the
// rules).
func TestMarkedCommands(t *testing.T) {
	t.Parallel()
	all := sessions(t)
	if len(all) == 0 {
		t.Fatal("no block is marked as tested")
	}
	byName := map[string]*session{}
	for _, s := range all {
		byName[s.page+"#"+s.marker.name] = s
	}
	for _, s := range all {
		t.Run(strings.TrimSuffix(s.page, ".md")+"/"+s.marker.name, func(t *testing.T) {
			t.Parallel()
			if s.marker.pending != "" {
				t.Skipf("pending: %s", s.marker.pending)
			}
			var inherited []string
			if s.marker.env != "" {
				other := byName[s.page+"#"+s.marker.env]
				if other == nil {
					t.Fatalf("env: no session %q on %s", s.marker.env, s.page)
				}
				inherited = other.exportLines()
			}
			runSession(t, s, inherited)
		})
	}
}

func runSession(t *testing.T, s *session, inherited []string) {
	bin := testenv.BuildBinary(t)
	dir := t.TempDir()
	emulatorAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	moved := strings.NewReplacer("127.0.0.1:8443", emulatorAddr)
	vars := map[string]string{"PWD": dir, "HOME": dir}
	env := map[string]string{
		"NATS_EMBEDDED_LISTEN":    fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		"NATS_EMBEDDED_STORE_DIR": filepath.Join(dir, "data", "nats"),
		"HTTP_LISTEN":             fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
	}
	var out sessionOutput
	var procs []*testenv.Process

	var lines []string
	lines = append(lines, inherited...)
	for _, b := range s.blocks {
		lines = append(lines, shellLines(b.text)...)
	}
	for _, line := range lines {
		cmd, comment := splitComment(line)
		ws, err := words(strings.TrimSpace(cmd), vars)
		if err != nil {
			t.Fatalf("%s: %v", s.page, err)
		}
		for i := range ws {
			ws[i] = moved.Replace(ws[i])
		}
		if len(ws) > 0 && ws[0] == "export" {
			for _, kv := range ws[1:] {
				k, v, _ := strings.Cut(kv, "=")
				env[k], vars[k] = v, v
			}
			continue
		}
		assigns, args, ok := binaryArgs(ws)
		if !ok {
			if len(ws) >= 2 && ws[0] == "go" && ws[1] == "test" {
				continue // TestReadmeTestCommandIsCI checks it
			}
			t.Fatalf("%s: %q is not an alert-domains command", s.page, cmd)
		}
		cmdEnv := map[string]string{}
		for k, v := range env {
			cmdEnv[k] = v
		}
		for _, a := range assigns {
			k, v, _ := strings.Cut(a, "=")
			cmdEnv[k] = v
		}
		if len(args) > 0 && args[0] == "emulate" && !slices.ContainsFunc(args, func(a string) bool { return strings.TrimLeft(a, "-") == "listen" }) {
			args = append([]string{"emulate", "-listen", emulatorAddr}, args[1:]...)
		}
		if len(args) > 0 && background[args[0]] != nil {
			p := testenv.StartService(t, bin, envList(cmdEnv), args...)
			procs = append(procs, p)
			waitForMatch(t, p, background[args[0]], line)
			continue
		}
		want := 0
		if m := exitStatus.FindStringSubmatch(comment); m != nil {
			want, _ = strconv.Atoi(m[1])
		}
		code, output := runForeground(t, bin, dir, cmdEnv, args)
		out.add(output)
		if code != want {
			t.Errorf("%s: %s: exit status %d, want %d\n%s", s.page, line, code, want, output)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, w := range s.marker.want {
		for {
			all := out.String()
			for _, p := range procs {
				all += p.Output()
			}
			if strings.Contains(all, w) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: the session's output lacks %q:\n%s", s.page, w, all)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// waitForMatch waits for a line of p's output that matches re.
func waitForMatch(t *testing.T, p *testenv.Process, re *regexp.Regexp, line string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if re.MatchString(p.Output()) {
			return
		}
		select {
		case <-p.Done():
			t.Fatalf("%s: exited before it was ready:\n%s", line, p.Output())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready within a minute:\n%s", line, p.Output())
		}
	}
}

func runForeground(t *testing.T, bin, dir string, env map[string]string, args []string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	base := map[string]string{"PATH": os.Getenv("PATH"), "TMPDIR": os.TempDir()}
	for k, v := range env {
		base[k] = v
	}
	cmd.Env = envList(base)
	output, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, string(output)
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), string(output)
	}
	t.Fatalf("alert-domains %s: %v\n%s", strings.Join(args, " "), err, output)
	return -1, ""
}

// sessionOutput collects the output of a session's foreground commands.
type sessionOutput struct {
	mu sync.Mutex
	b  strings.Builder
}

func (o *sessionOutput) add(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b.WriteString(s)
}

func (o *sessionOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// TestFlagsExist: every flag an alert-domains command line of the pages
// uses is one that command has (its -h lists it).
func TestFlagsExist(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildBinary(t)
	helpOf := map[string]string{}
	for _, p := range docPages(t) {
		for _, b := range p.blocks {
			if b.info != "sh" {
				continue
			}
			for _, line := range shellLines(b.text) {
				ws := strings.Fields(commandOf(line))
				_, args, ok := binaryArgs(ws)
				if !ok || len(args) == 0 || args[0] == "help" || strings.HasPrefix(args[0], "-") {
					continue
				}
				sub := args[0]
				if _, seen := helpOf[sub]; !seen {
					out, _ := exec.Command(bin, sub, "-h").CombinedOutput()
					helpOf[sub] = string(out)
				}
				for _, a := range args[1:] {
					if !strings.HasPrefix(a, "-") || a == "-" {
						continue
					}
					name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
					switch {
					case regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(name) + `\b`).MatchString(helpOf[sub]):
					default:
						t.Errorf("%s: %q: alert-domains %s has no flag -%s", p.path, line, sub, name)
					}
				}
			}
		}
	}
}

// tableRows are the rows of the Markdown tables of a page (outside code),
// each as its cells.
func tableRows(p *page) [][]string {
	var rows [][]string
	prose := p.prose()
	for i := 1; i <= len(p.lines); i++ {
		line, ok := prose[i]
		if !ok || !strings.HasPrefix(strings.TrimSpace(line), "|") || strings.HasPrefix(strings.TrimSpace(line), "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		rows = append(rows, cells)
	}
	return rows
}

var codeName = regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")

// TestConfigurationNamesEveryVariable: configuration.md has a table row for
// every variable of the configuration, with its default; and every variable
// its tables name is one (or one the service warns is removed).
func TestConfigurationNamesEveryVariable(t *testing.T) {
	t.Parallel()
	p := readPage(t, "docs/configuration.md")
	rowOf := map[string]string{}
	for _, cells := range tableRows(p) {
		for _, m := range codeName.FindAllStringSubmatch(cells[0], -1) {
			rowOf[m[1]] = strings.Join(cells, " | ")
		}
	}
	known := map[string]bool{}
	for _, v := range config.Variables() {
		known[v.Name] = true
		row, ok := rowOf[v.Name]
		switch {
		case !ok:
			t.Errorf("configuration.md has no row for %s", v.Name)
		case v.Default != "" && !strings.Contains(row, "`"+v.Default+"`"):
			t.Errorf("configuration.md: the row of %s lacks its default `%s`: %s", v.Name, v.Default, row)
		}
	}
	for name := range rowOf {
		if known[name] {
			continue
		}
		cfg, err := config.Load(config.MapEnv(map[string]string{name: "x"}))
		if err != nil || !slices.ContainsFunc(cfg.Warnings, func(w config.Warning) bool { return w.Variable == name }) {
			t.Errorf("configuration.md names %s, which is neither a variable nor a removed one", name)
		}
	}
}

// TestMetricNamesExist: every alert_domains_* name the pages give is a
// metric the service registers.
func TestMetricNamesExist(t *testing.T) {
	t.Parallel()
	families, err := metrics.Families()
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, f := range families {
		registered[f.Name] = true
	}
	name := regexp.MustCompile(`\balert_domains_[a-z_]+[a-z]`)
	for _, p := range docPages(t) {
		for i, line := range p.lines {
			for _, n := range name.FindAllString(line, -1) {
				if !registered[n] {
					t.Errorf("%s:%d: %s is not a metric of the service", p.path, i+1, n)
				}
			}
		}
	}
}

// TestTestNamesExist: every test, fuzz target and benchmark the pages cite
// is a function of the repository's tests.
func TestTestNamesExist(t *testing.T) {
	t.Parallel()
	defined := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)[A-Za-z0-9_]+)\(`)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllStringSubmatch(string(data), -1) {
			defined[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cited := regexp.MustCompile("`((?:Test|Fuzz|Benchmark)[A-Z][A-Za-z0-9_]*)`|\\b((?:Test|Fuzz|Benchmark)[A-Z][A-Za-z0-9_]*)\\b")
	for _, p := range docPages(t) {
		for i, line := range p.lines {
			for _, m := range cited.FindAllStringSubmatch(line, -1) {
				n := m[1] + m[2]
				if !defined[n] {
					t.Errorf("%s:%d: %s is not a test of the repository", p.path, i+1, n)
				}
			}
		}
	}
}

// TestFailureKindsTable: results.md's table has one row per failure kind,
// and says which a replay takes by default as replay does.
func TestFailureKindsTable(t *testing.T) {
	t.Parallel()
	kinds := []message.Kind{
		message.KindInvalidRequest, message.KindBadRequest, message.KindUnauthorized, message.KindForbidden,
		message.KindNotFound, message.KindThrottled, message.KindUnavailable, message.KindBadResponse,
		message.KindUnknownTenant,
	}
	replayable, _, err := ops.ParseKinds("")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[message.Kind][]string{}
	for _, cells := range tableRows(readPage(t, "docs/results.md")) {
		if len(cells) == 5 && strings.HasPrefix(cells[0], "`") && cells[1] != "when" {
			rows[message.Kind(strings.Trim(cells[0], "`"))] = cells
		}
	}
	if len(rows) != len(kinds) {
		t.Errorf("results.md's failure kinds table has %d rows, the service %d kinds", len(rows), len(kinds))
	}
	for _, k := range kinds {
		cells, ok := rows[k]
		if !ok {
			t.Errorf("results.md has no row for %s", k)
			continue
		}
		retried := strings.HasPrefix(cells[2], "yes")
		if retried != k.Retryable() {
			t.Errorf("results.md: %s retried %q; the service retries it: %v", k, cells[2], k.Retryable())
		}
		if says := strings.HasPrefix(cells[3], "yes"); says != replayable[k] {
			t.Errorf("results.md: %s replayable %q; replay takes it by default: %v", k, cells[3], replayable[k])
		}
	}
}

// TestIntegrationsSnippetsAreTested: the Go code of integrations.md is the
// code TestGoSubscriber runs.
func TestIntegrationsSnippetsAreTested(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("integrations_test.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range readPage(t, "docs/integrations.md").blocks {
		if b.info != "go" {
			continue
		}
		n++
		if code := strings.Join(b.text, "\n"); !strings.Contains(string(src), code) {
			t.Errorf("docs/integrations.md:%d: this Go example is not in integrations_test.go:\n%s", b.line, code)
		}
	}
	if n == 0 {
		t.Error("docs/integrations.md has no Go example")
	}
}

// TestNatsCommandsUseContractNames: the subjects, streams and headers of
// the nats CLI examples are the service's defaults and the headers it
// reads.
func TestNatsCommandsUseContractNames(t *testing.T) {
	t.Parallel()
	defaults := map[string]string{}
	for _, v := range config.Variables() {
		defaults[v.Name] = v.Default
	}
	subjects := []string{defaults["REQUEST_SUBJECT"], defaults["SUCCESS_SUBJECT"], defaults["FAILURE_SUBJECT"]}
	streams := []string{defaults["REQUEST_STREAM"], defaults["RESULT_STREAM"]}
	headers := []string{message.HeaderCorrelationID, message.HeaderMsgID, message.HeaderTraceparent, "tracestate"}
	subject := regexp.MustCompile(`defender\.alerts\.domains[A-Za-z0-9_.*>-]*`)
	stream := regexp.MustCompile(`\bDEFENDER_ALERT_DOMAIN_[A-Z_]+`)
	header := regexp.MustCompile(`(?:-H|--header)[ =]'?([^:'\s]+):`)
	checked := 0
	for _, name := range []string{"docs/integrations.md", "docs/tenants.md"} {
		p := readPage(t, name)
		for _, b := range p.blocks {
			if b.info != "sh" {
				continue
			}
			for _, line := range shellLines(b.text) {
				cmd := commandOf(line)
				if !strings.HasPrefix(cmd, "nats ") {
					continue
				}
				checked++
				for _, s := range subject.FindAllString(cmd, -1) {
					if !contractSubject(s, subjects) {
						t.Errorf("%s: %q: %s is not a subject of the service", name, cmd, s)
					}
				}
				for _, s := range stream.FindAllString(cmd, -1) {
					if !slices.Contains(streams, s) {
						t.Errorf("%s: %q: %s is not a stream of the service", name, cmd, s)
					}
				}
				for _, m := range header.FindAllStringSubmatch(cmd, -1) {
					if !slices.Contains(headers, m[1]) {
						t.Errorf("%s: %q: the service does not read the header %s", name, cmd, m[1])
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no nats command found")
	}
}

// contractSubject reports whether s is a subject of the service: one of
// base, its per-tenant form (a tenant name, * or >), or every subject of one
// tenant (defender.alerts.domains.*.NAME).
func contractSubject(s string, base []string) bool {
	for _, b := range base {
		if s == b {
			return true
		}
		if t, ok := strings.CutPrefix(s, b+"."); ok && (t == "*" || t == ">" || config.ValidTenantName(t)) {
			return true
		}
	}
	prefix := base[0][:strings.LastIndex(base[0], ".")] + ".*."
	t, ok := strings.CutPrefix(s, prefix)
	return ok && config.ValidTenantName(t)
}

// TestExcerptsAreInTheirFile: each line of a block marked
// <!-- excerpt: FILE --> is a line of FILE.
func TestExcerptsAreInTheirFile(t *testing.T) {
	t.Parallel()
	for _, p := range docPages(t) {
		for _, b := range p.blocks {
			file, ok := strings.CutPrefix(b.marker, "excerpt:")
			if !ok {
				continue
			}
			path := filepath.Join(root, filepath.Dir(p.path), strings.TrimSpace(file))
			data, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%s:%d: %v", p.path, b.line, err)
				continue
			}
			have := map[string]bool{}
			sc := bufio.NewScanner(strings.NewReader(string(data)))
			for sc.Scan() {
				have[strings.TrimSpace(sc.Text())] = true
			}
			for _, line := range b.text {
				if l := strings.TrimSpace(line); l != "" && !have[l] {
					t.Errorf("%s:%d: %q is not a line of %s", p.path, b.line, l, file)
				}
			}
		}
	}
}

// TestBenchmarkCommandsAreGiven: BENCHMARKS.md gives every command the
// benchmarks declare, and keeps the generator's marker lines.
func TestBenchmarkCommandsAreGiven(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join(root, "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "bench", "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	command := regexp.MustCompile(`(?m)^(?:const )?\s*[A-Z][A-Za-z]*Command\s*=\s*"([^"]+)"`)
	marker := regexp.MustCompile(`(?m)^\s*(?:generatedMarker|tenantsBegin|tenantsEnd)\s*=\s*"([^"]+)"`)
	n := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range append(command.FindAllStringSubmatch(string(src), -1), marker.FindAllStringSubmatch(string(src), -1)...) {
			n++
			if !strings.Contains(string(doc), m[1]) {
				t.Errorf("BENCHMARKS.md lacks %q (%s)", m[1], filepath.Base(f))
			}
		}
	}
	if n < 4 {
		t.Errorf("found %d commands and markers in bench/, want at least 4", n)
	}
}
