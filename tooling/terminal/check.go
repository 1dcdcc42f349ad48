package terminal

import (
	"os"
	"os/user"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"mvdan.cc/sh/v3/syntax"
)

// Verdict is what Check decides about a command.
type Verdict int

const (
	// Allow: run it.
	Allow Verdict = iota
	// NeedsApproval: dangerous but sometimes wanted; runs only when the
	// operator set Approve to "all".
	NeedsApproval
	// Blocked: never run, whatever the settings.
	Blocked
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case NeedsApproval:
		return "needs approval"
	case Blocked:
		return "blocked"
	}
	return "unknown"
}

// Check decides whether command may run and, when not, says why in a few
// words meant for the model. It parses the command as a shell does and
// walks every command in it: lists, pipelines, subshells, function
// bodies, command and process substitutions, here-documents fed to a
// shell, code given to sh -c, eval, trap and alias, and values programs
// run as code (PAGER, GIT_SSH_COMMAND, git -c core.pager), through quoting,
// backslashes, paths (/bin/rm) and wrappers (sudo, env, xargs, nohup,
// timeout…).
//
// A command whose name is only known at run time ($X, $(echo rm),
// ${RM:-rm}, globs, braces), code for another interpreter (python -c,
// perl -e, node -e, or fed on its input), a script the command writes and
// then runs, and anything that cannot be parsed need approval: what would
// run cannot be known from the text. Signalling this server, its parent
// or its process group is blocked.
//
// It is a guard against accidents and a model talked into something, not a
// sandbox: a program written by an earlier call and run by a later one, or
// any tool that runs commands of its own (make, git hooks, an editor),
// gets past it. Words given to echo or printf are data: "echo rm -rf /" is
// allowed, "echo rm -rf / | sh" is not.
func Check(command string) (verdict Verdict, reason string) {
	c := checker{self: currentProcess()}
	c.script(command, 0)
	c.scriptsWrittenThenRun()
	return c.verdict, c.reason
}

// maxDepth bounds nesting of sh -c, eval and substitutions; anything
// deeper is refused rather than half-checked.
const maxDepth = 8

type checker struct {
	verdict Verdict
	reason  string
	self    process
	// written and ran are the files the command writes (redirections,
	// tee, cp, downloads) and runs as scripts, by base name; "" stands
	// for a name only known at run time.
	written, ran []string
}

// flag records a finding; the first of the most severe kind wins.
func (c *checker) flag(v Verdict, reason string) {
	if v > c.verdict {
		c.verdict, c.reason = v, reason
	}
}

var sqlDrop = regexp.MustCompile(`(?i)\b(drop\s+(table|database|schema)|truncate\s+table)\b`)

// script checks shell source. It is read as bash and as POSIX sh (the
// server runs /bin/sh, which may be either, and they read some text
// differently): every reading that parses is checked. When none does, the lines before the error are still checked,
// since a shell runs them before it meets the error.
func (c *checker) script(src string, depth int) {
	if depth > maxDepth {
		c.flag(NeedsApproval, "it nests shells and substitutions too deeply to be checked")
		return
	}
	if sqlDrop.MatchString(src) {
		c.flag(NeedsApproval, "it drops or truncates database tables")
	}
	var firstErr error
	parsed := false
	for _, lang := range []syntax.LangVariant{syntax.LangBash, syntax.LangPOSIX} {
		f, err := parse(src, lang)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		parsed = true
		fc := &fileCheck{checker: c, src: src, depth: depth, calls: map[*syntax.CallExpr][]word{}}
		fc.file(f)
	}
	if parsed {
		return
	}
	c.flag(NeedsApproval, "it is not shell syntax this server can parse, so what would run cannot be checked")
	if prefix := linesBefore(src, errorLine(firstErr)); len(prefix) < len(src) && strings.TrimSpace(prefix) != "" {
		c.script(prefix, depth)
	}
}

// process is what identifies this server to kill rules.
type process struct {
	pid, ppid, pgid int
	names           []string // what pkill and killall would match
	// ids are the values of pkill's -P, -g, -s, -u that select it: 0
	// (the caller's own group or session), its pid, parent, group, user.
	ids []string
}

var selfNames = sync.OnceValue(func() []string {
	names := []string{"hermesd"}
	if exe, err := os.Executable(); err == nil {
		names = append(names, filepath.Base(exe))
	}
	if len(os.Args) > 0 {
		names = append(names, filepath.Base(os.Args[0]))
	}
	return names
})

var selfUser = sync.OnceValue(func() []string {
	ids := []string{strconv.Itoa(os.Getuid())}
	if u, err := user.Current(); err == nil {
		ids = append(ids, u.Username)
	}
	return ids
})

func currentProcess() process {
	p := process{pid: os.Getpid(), ppid: os.Getppid(), pgid: syscall.Getpgrp(), names: selfNames()}
	p.ids = append([]string{"0", strconv.Itoa(p.pid), strconv.Itoa(p.ppid), strconv.Itoa(p.pgid)}, selfUser()...)
	return p
}

var (
	shells       = set("sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh")
	posixShells  = set("sh", "bash", "zsh", "dash", "ksh", "mksh", "ash")
	interpreters = set("python", "python2", "python3", "perl", "ruby", "node", "nodejs", "php", "lua", "deno", "bun")
	powerOff     = set("shutdown", "reboot", "halt", "poweroff")
	downloaders  = set("curl", "wget", "fetch", "aria2c")
)

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// base is a command name without its directory: /bin/rm and rm are one.
func base(word string) string {
	if i := strings.LastIndexByte(word, '/'); i >= 0 && i < len(word)-1 {
		return word[i+1:]
	}
	return word
}

func texts(ws []word) []string {
	s := make([]string, len(ws))
	for i, w := range ws {
		s[i] = w.s
	}
	return s
}

func allLiteral(ws []word) bool {
	for _, w := range ws {
		if !w.lit {
			return false
		}
	}
	return true
}

// wrappers run the command that follows their options; the letters are
// their short options that take a value.
var wrappers = map[string]string{
	"sudo": "uUgghpCDrtTR", "doas": "uC", "nice": "n", "ionice": "cnpt", "stdbuf": "ioe",
	"nohup": "", "setsid": "", "command": "", "builtin": "", "exec": "a", "unbuffer": "",
	"busybox": "", "caffeinate": "tw", "time": "of", "strace": "oeEpsuIabPX", "ltrace": "oeEpsuna",
	"env": "uCS", "xargs": "IinPdLsEaJ", "unshare": "S", "setpriv": "", "nsenter": "tSG",
	"runuser": "ugG", "chrt": "", "taskset": "", "chroot": "", "flock": "wEe", "timeout": "sk",
}

// command checks one simple command and returns its effective words, the
// command that really runs once wrappers are peeled off (nil when that is
// not known).
func (fc *fileCheck) command(words []word) []word {
	c := fc.checker
	for {
		for len(words) > 0 && words[0].lit && isAssignment(words[0].s) {
			name, value, _ := strings.Cut(words[0].s, "=")
			fc.assignment(name, word{s: value, lit: true, w: words[0].w})
			words = words[1:]
		}
		if len(words) == 0 {
			return nil
		}
		if !words[0].lit {
			reason := "its command name " + strconv.Quote(words[0].s) + " is only known at run time, so what runs cannot be checked"
			if fc.downloads(words[0].w) {
				reason = "it runs a command downloaded from the network"
			}
			c.flag(NeedsApproval, reason)
			return nil
		}
		name := base(words[0].s)
		args := words[1:]
		if strings.HasPrefix(name, "{") && strings.HasSuffix(name, "}") {
			c.flag(NeedsApproval, "its command name "+name+" is filled in at run time (xargs -I, find -exec)")
			return nil
		}
		withValue, wrapper := wrappers[name]
		if !wrapper {
			if strings.Contains(words[0].s, "/") {
				c.ran = append(c.ran, name)
			}
			fc.simple(name, args)
			return words
		}
		switch name {
		case "sudo", "doas":
			c.flag(NeedsApproval, "it runs a command as root ("+name+")")
		case "env":
			if i, ok := optionArg(args, "S"); ok {
				fc.code("env -S", args[i])
			}
		case "xargs":
			rest := skipOptions(args, withValue)
			if opt, ok := replaceOption(args); ok && len(rest) > 0 && strings.Contains(rest[0].s, opt) {
				c.flag(NeedsApproval, "xargs fills in the command name from its input")
				return nil
			}
		case "flock":
			if i, ok := optionArg(args, "c"); ok {
				fc.code("flock -c", args[i])
				return words
			}
			args = skipOptions(args, withValue)
			if len(args) > 0 {
				args = args[1:] // the lock file
			}
			words = args
			continue
		}
		args = skipOptions(args, withValue)
		switch name {
		case "timeout", "chrt", "chroot":
			if len(args) > 0 {
				args = args[1:] // the duration, priority or new root
			}
		case "taskset":
			if len(args) > 0 && !strings.HasPrefix(args[0].s, "-") {
				args = args[1:] // the CPU mask
			}
		}
		words = args
	}
}

// codeVars are variables whose value programs run as shell code (git and
// man run $PAGER and $EDITOR with sh -c); scriptVars name a script a shell
// reads first; libVars load code into every program started.
var (
	codeVars = set("PAGER", "GIT_PAGER", "MANPAGER", "SYSTEMD_PAGER", "EDITOR", "VISUAL", "GIT_EDITOR",
		"GIT_SEQUENCE_EDITOR", "GIT_SSH_COMMAND", "GIT_EXTERNAL_DIFF", "LESSOPEN", "LESSCLOSE", "PROMPT_COMMAND")
	scriptVars = set("BASH_ENV", "ENV")
	libVars    = set("LD_PRELOAD", "LD_AUDIT")
)

// assignment checks a variable set by the command, whose value may be
// code some program runs later.
func (fc *fileCheck) assignment(name string, value word) {
	switch {
	case codeVars[name]:
		fc.code(name, value)
	case scriptVars[name]:
		fc.scriptArg(name, value, true)
	case libVars[name]:
		fc.flag(NeedsApproval, "it loads a library into every program it runs ("+name+")")
	}
}

// replaceOption returns the placeholder of xargs -I/-i/-J/--replace.
func replaceOption(args []word) (string, bool) {
	for i, a := range args {
		switch {
		case a.s == "-I" || a.s == "-J":
			if i+1 < len(args) {
				return args[i+1].s, true
			}
		case strings.HasPrefix(a.s, "-I") || strings.HasPrefix(a.s, "-J"):
			return a.s[2:], true
		case a.s == "-i" || a.s == "--replace":
			return "{}", true
		case strings.HasPrefix(a.s, "-i") || strings.HasPrefix(a.s, "--replace="):
			_, v, _ := strings.Cut(a.s, "=")
			if v == "" {
				v = a.s[2:]
			}
			return v, true
		case !strings.HasPrefix(a.s, "-"):
			return "", false
		}
	}
	return "", false
}

// simple checks a command with wrappers peeled off.
func (fc *fileCheck) simple(name string, args []word) {
	c := fc.checker
	strs := texts(args)
	switch {
	case shells[name]:
		fc.shell(name, args)
	case interpreters[name]:
		fc.interpreter(name, args)
	case name == "source" || name == ".":
		if len(args) > 0 {
			fc.scriptArg(name, args[0], true)
		}
	case name == "eval":
		if len(args) > 0 {
			fc.codeWords("eval", args)
		}
	case name == "trap":
		if len(args) > 1 && args[0].s != "-" && !strings.HasPrefix(args[0].s, "-") {
			fc.code("trap", args[0])
		}
	case name == "alias":
		// An alias's value is shell code, run where the alias is used
		// (dash expands aliases in scripts).
		for _, a := range args {
			if _, v, ok := strings.Cut(a.s, "="); ok {
				fc.code("alias", word{s: v, lit: a.lit, w: a.w})
			}
		}
	case name == "watch":
		fc.codeWords("watch", skipOptions(args, "nd"))
	case name == "su":
		c.flag(NeedsApproval, "it switches user (su)")
		if i, ok := optionArg(args, "c"); ok {
			fc.code("su -c", args[i])
		}
	case name == "rm":
		c.rm(strs)
	case name == "chmod", name == "chown", name == "chgrp":
		c.chmod(name, strs)
	case name == "dd":
		for _, a := range strs {
			if of, ok := strings.CutPrefix(a, "of="); ok {
				if rawDevice(of) {
					c.flag(Blocked, "dd would overwrite the raw device "+of)
				}
				c.written = append(c.written, base(of))
			}
		}
		c.flag(NeedsApproval, "dd writes raw bytes and can destroy data")
	case name == "mkfs" || strings.HasPrefix(name, "mkfs.") || name == "mke2fs" || name == "wipefs":
		c.flag(Blocked, "it formats or wipes a filesystem ("+name+")")
	case powerOff[name]:
		c.flag(Blocked, "it shuts down or reboots the machine ("+name+")")
	case name == "init" || name == "telinit":
		if len(strs) > 0 && (strs[0] == "0" || strs[0] == "6") {
			c.flag(Blocked, "it shuts down or reboots the machine ("+name+" "+strs[0]+")")
		}
	case name == "systemctl":
		for _, a := range strs {
			if a == "poweroff" || a == "reboot" || a == "halt" || a == "kexec" {
				c.flag(Blocked, "it shuts down or reboots the machine (systemctl "+a+")")
			}
		}
	case name == "tee", name == "cp", name == "shred", name == "mv", name == "install", name == "ln":
		c.copyLike(name, args)
	case downloaders[name]:
		c.download(args)
	case name == "kill":
		c.kill(args)
	case name == "pkill", name == "killall":
		c.killByName(name, args)
	case name == "killall5":
		c.flag(Blocked, "it signals every process, this server included (killall5)")
	case name == "git":
		fc.gitConfig(args)
		c.git(strs)
	case name == "find":
		fc.find(args)
	}
}

// shell checks a shell started with args: code given with -c is checked
// as a script of its own; a script file is noted as run.
func (fc *fileCheck) shell(name string, args []word) {
	if i, ok := optionArg(args, "c"); ok {
		if !posixShells[name] {
			fc.flag(NeedsApproval, "it runs "+name+" code, which this guard cannot read")
			return
		}
		fc.code(name+" -c", args[i])
		return
	}
	if hasShortOption(args, 'c') {
		fc.flag(NeedsApproval, "it runs "+name+" -c with code that comes from its input")
		return
	}
	if s, ok := scriptOperand(args); ok {
		fc.scriptArg(name, s, posixShells[name])
	}
}

// interpreterCode lists, per interpreter, the options that take code on
// the command line.
var interpreterCode = map[string][]string{
	"python": {"-c"}, "python2": {"-c"}, "python3": {"-c"},
	"perl": {"-e", "-E"}, "ruby": {"-e"}, "node": {"-e", "-p", "--eval", "--print"},
	"nodejs": {"-e", "-p", "--eval", "--print"}, "php": {"-r"}, "lua": {"-e"},
	"deno": {"eval"}, "bun": {"-e", "--eval", "-p", "--print"},
}

// interpreter checks a language interpreter: code on its command line
// cannot be checked, so it needs approval.
func (fc *fileCheck) interpreter(name string, args []word) {
	for _, a := range args {
		if !strings.HasPrefix(a.s, "-") && name != "deno" {
			break // the script: what follows are its arguments
		}
		for _, opt := range interpreterCode[name] {
			cluster := len(opt) == 2 && len(a.s) > 2 && a.s[0] == '-' && a.s[1] != '-' && strings.Contains(a.s[1:], opt[1:])
			if a.s == opt || strings.HasPrefix(a.s, opt+"=") || cluster {
				fc.flag(NeedsApproval, "it runs "+name+" code given on the command line, which this guard cannot check")
				return
			}
		}
	}
	if s, ok := scriptOperand(args); ok {
		fc.scriptArg(name, s, false)
	}
}

// scriptOperand returns the first operand of a shell or interpreter: the
// script file it runs.
func scriptOperand(args []word) (word, bool) {
	for i := 0; i < len(args); i++ {
		a := args[i].s
		switch {
		case a == "--":
			if i+1 < len(args) {
				return args[i+1], true
			}
			return word{}, false
		case a == "-o" || a == "+o" || a == "-m" || a == "-W" || a == "-X" || a == "-O":
			if a == "-m" {
				return word{}, false // python -m module
			}
			i++
		case a == "-" || !strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "+"):
			return args[i], true
		}
	}
	return word{}, false
}

// scriptArg checks the script a shell, interpreter or source runs: a
// process substitution's output is checked like a pipe into it; a file
// is noted as run, to be matched against files the command writes.
func (fc *fileCheck) scriptArg(runner string, s word, shell bool) {
	if s.w != nil && len(s.w.Parts) == 1 {
		if ps, ok := s.w.Parts[0].(*syntax.ProcSubst); ok {
			fc.feeds = append(fc.feeds, feed{runner: runner, shell: shell, producers: ps.Stmts})
			return
		}
	}
	if !s.lit {
		if fc.downloads(s.w) {
			fc.flag(NeedsApproval, "it runs a script downloaded from the network")
		}
		fc.ran = append(fc.ran, "")
		return
	}
	if stdinPath(s.s) {
		return // the stdin feed is checked where the stdin comes from
	}
	fc.ran = append(fc.ran, base(s.s))
}

func stdinPath(p string) bool {
	return p == "-" || p == "/dev/stdin" || p == "/dev/fd/0" || p == "/proc/self/fd/0"
}

// readsStdin reports a shell or interpreter that reads its program from
// its input: no -c code, no script file (or - or /dev/stdin).
func readsStdin(eff []word) (runner string, shell, ok bool) {
	if len(eff) == 0 {
		return "", false, false
	}
	name := base(eff[0].s)
	args := eff[1:]
	switch {
	case name == "source" || name == ".":
		return name, true, len(args) > 0 && stdinPath(args[0].s)
	case shells[name]:
		if _, code := optionArg(args, "c"); code {
			return "", false, false
		}
		if hasShortOption(args, 's') {
			return name, posixShells[name], true
		}
	case interpreters[name]:
		for _, a := range args {
			for _, opt := range interpreterCode[name] {
				if a.s == opt {
					return "", false, false
				}
			}
		}
	default:
		return "", false, false
	}
	s, ok := scriptOperand(args)
	if ok && !stdinPath(s.s) {
		return "", false, false
	}
	return name, posixShells[name], true
}

// code checks a word that a shell will run as a script.
func (fc *fileCheck) code(what string, w word) {
	if !w.lit {
		reason := "it runs shell code built at run time (" + what + "), so what runs cannot be checked"
		if fc.downloads(w.w) {
			reason = "it runs a script downloaded from the network"
		}
		fc.flag(NeedsApproval, reason)
		return
	}
	fc.script(w.s, fc.depth+1)
}

// codeWords checks words a shell joins with spaces and runs (eval, watch).
func (fc *fileCheck) codeWords(what string, ws []word) {
	if len(ws) == 0 {
		return
	}
	fc.code(what, word{s: strings.Join(texts(ws), " "), lit: allLiteral(ws), w: ws[0].w})
}

// downloads reports a word whose substitutions run a download command.
func (fc *fileCheck) downloads(w *syntax.Word) bool {
	if w == nil {
		return false
	}
	found := false
	syntax.Walk(w, func(n syntax.Node) bool {
		if call, ok := n.(*syntax.CallExpr); ok && len(call.Args) > 0 {
			if name, ok := fc.literal(call.Args[0]); ok && downloaders[base(name)] {
				found = true
			}
		}
		return !found
	})
	return found
}

func (c *checker) rm(args []string) {
	recursive, noPreserve := false, false
	var targets []string
	opts := true
	for _, a := range args {
		switch {
		case opts && a == "--":
			opts = false
		case opts && strings.HasPrefix(a, "--"):
			recursive = recursive || a == "--recursive"
			noPreserve = noPreserve || a == "--no-preserve-root"
		case opts && len(a) > 1 && a[0] == '-':
			recursive = recursive || strings.ContainsAny(a, "rR")
		default:
			targets = append(targets, a)
		}
	}
	if noPreserve {
		c.flag(Blocked, "it deletes with --no-preserve-root")
	}
	if !recursive {
		return
	}
	for _, t := range targets {
		if critical(t) {
			c.flag(Blocked, "it recursively deletes "+t)
		}
	}
	c.flag(NeedsApproval, "it deletes files recursively (rm -r)")
}

func (c *checker) chmod(name string, args []string) {
	recursive := false
	var rest []string
	opts := true
	for _, a := range args {
		switch {
		case opts && a == "--":
			opts = false
		case opts && a == "--recursive":
			recursive = true
		case opts && strings.HasPrefix(a, "--"):
		case opts && len(a) > 1 && a[0] == '-' && strings.Trim(a[1:], "RcfvhHLP") == "":
			recursive = recursive || strings.Contains(a, "R")
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 {
		return
	}
	mode, targets := rest[0], rest[1:]
	if recursive {
		for _, t := range targets {
			if critical(t) {
				c.flag(Blocked, "it recursively changes "+name+" of "+t)
			}
		}
	}
	switch {
	case name == "chmod" && worldWritable(mode):
		c.flag(NeedsApproval, "it makes files writable by everyone (chmod "+mode+")")
	case name != "chmod" && recursive:
		c.flag(NeedsApproval, "it changes ownership recursively ("+name+" -R)")
	}
}

// copyLike checks commands that write files named by their operands:
// raw devices are blocked, moving a system directory away is blocked, and
// what they write is noted.
func (c *checker) copyLike(name string, args []word) {
	var operands []word
	target := ""
	opts := true
	for i := 0; i < len(args); i++ {
		a := args[i].s
		switch {
		case opts && a == "--":
			opts = false
		case opts && (a == "-t" || a == "--target-directory") && i+1 < len(args):
			i++
			target = args[i].s
		case opts && strings.HasPrefix(a, "--target-directory="):
			target = strings.TrimPrefix(a, "--target-directory=")
		case opts && len(a) > 1 && a[0] == '-':
		default:
			operands = append(operands, args[i])
		}
	}
	for _, o := range operands {
		if rawDevice(o.s) {
			c.flag(Blocked, "it writes to the raw device "+o.s)
		}
	}
	sources := operands
	switch {
	case name == "tee", name == "shred":
		for _, o := range operands {
			c.wrote(o)
		}
		return
	case target != "":
	case len(operands) > 0:
		c.wrote(operands[len(operands)-1])
		sources = operands[:len(operands)-1]
	}
	if name == "mv" {
		for _, s := range sources {
			if critical(s.s) {
				c.flag(Blocked, "it moves "+s.s+" away, which wrecks the system or the account")
			}
		}
	}
}

// wrote notes a file the command writes.
func (c *checker) wrote(w word) {
	if !w.lit {
		c.written = append(c.written, "")
		return
	}
	if w.s != "/dev/null" && w.s != "/dev/stdout" && w.s != "/dev/stderr" {
		c.written = append(c.written, base(w.s))
	}
}

// download notes the files a download command saves: its -o/-O file, and
// the URL's own name, which wget and curl -O use.
func (c *checker) download(args []word) {
	for i, a := range args {
		switch {
		case (a.s == "-o" || a.s == "-O" || a.s == "--output" || a.s == "--output-document") && i+1 < len(args):
			c.wrote(args[i+1])
		case strings.Contains(a.s, "://"):
			u := a.s
			if j := strings.IndexAny(u, "?#"); j >= 0 {
				u = u[:j]
			}
			c.wrote(word{s: base(u), lit: a.lit})
		}
	}
}

// scriptsWrittenThenRun flags a command that runs a script it writes
// itself: its content is not known when the command is checked.
func (c *checker) scriptsWrittenThenRun() {
	for _, r := range c.ran {
		for _, w := range c.written {
			if r == w || r == "" || w == "" {
				c.flag(NeedsApproval, "it runs a script that it writes itself, which cannot be checked before it exists")
				return
			}
		}
	}
}

// worldWritable reports a chmod mode granting write to others: 777, 0666,
// a+w, o+rwx.
func worldWritable(mode string) bool {
	if isDigits(mode) {
		return len(mode) >= 3 && strings.ContainsAny(mode[len(mode)-1:], "2367")
	}
	for _, clause := range strings.Split(mode, ",") {
		who, perm, ok := cutAny(clause, "+=")
		if ok && strings.ContainsAny(who, "oa") && strings.Contains(perm, "w") {
			return true
		}
	}
	return false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func cutAny(s, chars string) (before, after string, ok bool) {
	if i := strings.IndexAny(s, chars); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// selfRefs are the shell's names for this server's own process (the
// shell's parent) and the shell itself.
var selfRefs = set("$PPID", "${PPID}", "$$", "${$}", "-$PPID", "-${PPID}", "-$$", "-${$}")

// kill blocks signals to this server, its parent or its process group
// (kill -9 $PPID took the server down), and to every process (-1). A
// target only known at run time needs approval, except $! (the last job
// the command itself started) and %job.
func (c *checker) kill(args []word) {
	if len(args) > 0 && strings.HasPrefix(args[0].s, "-") && args[0].s != "--" {
		switch {
		case args[0].s == "-l" || args[0].s == "-L":
			return
		case args[0].s == "-s" || args[0].s == "-n":
			args = args[min(2, len(args)):]
		default:
			args = args[1:] // the signal
		}
	}
	for _, a := range args {
		switch {
		case a.s == "--":
		case selfRefs[a.s]:
			c.flag(Blocked, "it signals this server or its shell ("+a.s+")")
		case !a.lit:
			if a.s != "$!" && a.s != "${!}" {
				c.flag(NeedsApproval, "it signals a process chosen at run time ("+a.s+"), which may be this server")
			}
		default:
			c.killTarget(a.s)
		}
	}
}

// killTarget checks a literal kill target: a pid, -pgid, or %job.
func (c *checker) killTarget(t string) {
	n, err := strconv.Atoi(t)
	if err != nil {
		return // a job spec or a bad pid: kill refuses it
	}
	switch {
	case n == 0:
		c.flag(Blocked, "it signals its whole process group (kill 0)")
	case n == -1:
		c.flag(Blocked, "it signals every process the server may signal, the server included (kill -1)")
	case n == c.self.pid || n == -c.self.pid:
		c.flag(Blocked, "it signals this server's own process")
	case n == c.self.ppid:
		c.flag(Blocked, "it signals the process that started this server")
	case n == -c.self.pgid:
		c.flag(Blocked, "it signals this server's process group")
	case n == 1:
		c.flag(NeedsApproval, "it signals process 1, the init of this machine or container")
	}
}

// killByName checks pkill and killall: a pattern or name matching this
// server, or selecting it by parent, group, session or user, is blocked;
// any other needs approval, since it may hit processes the agent does not
// own.
func (c *checker) killByName(name string, args []word) {
	c.flag(NeedsApproval, "it kills processes by name, possibly ones the agent does not own ("+name+")")
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a.s, "-") && len(a.s) > 1 {
			opt := a.s
			switch opt {
			case "-P", "--parent", "-g", "--pgroup", "-s", "--session", "-u", "--euid", "-U", "--uid", "--user", "-G", "--group":
				if i+1 < len(args) {
					i++
					v := args[i]
					if selfRefs[v.s] || !v.lit || slices.Contains(c.self.ids, v.s) {
						c.flag(Blocked, "it selects processes in a way that includes this server ("+name+" "+opt+" "+v.s+")")
					}
				}
			case "-t", "--terminal", "-F", "--pidfile", "--signal", "-o", "--older-than", "-y", "--younger-than", "-O", "-n":
				i++
			}
			continue
		}
		if !a.lit {
			c.flag(Blocked, "it kills processes whose name is only known at run time, possibly this server")
			continue
		}
		for _, n := range c.self.names {
			if matchesName(name, a.s, n) {
				c.flag(Blocked, "it kills this server ("+name+" "+a.s+")")
			}
		}
	}
}

// matchesName reports whether pkill's pattern (a regular expression) or
// killall's name would select a process called n.
func matchesName(tool, pattern, n string) bool {
	if tool == "killall" {
		return pattern == n || base(pattern) == n
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return true // an unreadable pattern: assume the worst
	}
	return re.MatchString(n)
}

// gitCommandKeys are git settings whose value is a command git runs with
// the shell; pager.<cmd> too, and aliases and helpers starting with "!".
var gitCommandKeys = set("core.pager", "core.sshcommand", "core.editor", "core.fsmonitor", "core.askpass",
	"sequence.editor", "diff.external", "gpg.program", "gpg.ssh.program", "merge.tool", "web.browser", "credential.helper")

// gitConfig checks settings given with git -c KEY=VALUE that make git run
// a command: the command is checked as shell code.
func (fc *fileCheck) gitConfig(args []word) {
	for i := 0; i < len(args) && strings.HasPrefix(args[i].s, "-"); i++ {
		switch args[i].s {
		case "-C", "--git-dir", "--work-tree", "--namespace":
			i++ // their value
			continue
		case "-c":
		default:
			continue
		}
		if i++; i == len(args) {
			return
		}
		key, value, _ := strings.Cut(args[i].s, "=")
		key = strings.ToLower(key)
		v := word{s: value, lit: args[i].lit, w: args[i].w}
		switch {
		case key == "core.hookspath":
			fc.flag(NeedsApproval, "it points git at other hooks (core.hooksPath), scripts git runs")
		case strings.HasPrefix(value, "!") && (strings.HasPrefix(key, "alias.") || key == "credential.helper"):
			v.s = value[1:]
			fc.code("git -c "+key, v)
		case gitCommandKeys[key] || strings.HasPrefix(key, "pager."):
			fc.code("git -c "+key, v)
		}
	}
}

func (c *checker) git(args []string) {
	// Global options come before the subcommand; some take a value.
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		if (args[0] == "-C" || args[0] == "-c" || args[0] == "--git-dir" || args[0] == "--work-tree" || args[0] == "--namespace") && len(args) > 1 {
			args = args[1:]
		}
		args = args[1:]
	}
	if len(args) == 0 {
		return
	}
	sub, rest := args[0], args[1:]
	has := func(long string, short byte) bool {
		for _, a := range rest {
			if strings.HasPrefix(a, long) {
				return true
			}
			if short != 0 && len(a) > 1 && a[0] == '-' && a[1] != '-' && strings.IndexByte(a[1:], short) >= 0 {
				return true
			}
		}
		return false
	}
	switch sub {
	case "reset":
		if has("--hard", 0) {
			c.flag(NeedsApproval, "git reset --hard discards uncommitted work")
		}
	case "clean":
		if has("--force", 'f') {
			c.flag(NeedsApproval, "git clean -f deletes untracked files")
		}
	case "push":
		force := has("--force", 'f') || has("--mirror", 0)
		for _, a := range rest {
			force = force || strings.HasPrefix(a, "+")
		}
		if force {
			c.flag(NeedsApproval, "git push --force rewrites remote history")
		}
	}
}

func (fc *fileCheck) find(args []word) {
	for i := 0; i < len(args); i++ {
		switch args[i].s {
		case "-delete":
			fc.flag(NeedsApproval, "find -delete deletes files")
		case "-exec", "-execdir", "-ok", "-okdir":
			j := i + 1
			for j < len(args) && args[j].s != ";" && args[j].s != "+" {
				j++
			}
			if i+1 < j {
				fc.command(args[i+1 : j])
			}
			i = j
		}
	}
}

// optionArg returns the index of the argument of a short option given
// alone or in a cluster (-c, -lc, -S): the next word that is not an
// option.
func optionArg(args []word, opt string) (int, bool) {
	for i := 0; i < len(args); i++ {
		a := args[i].s
		switch {
		case a == "--":
			return 0, false
		case a == "-o" || a == "+o": // shell option name follows
			i++
		case len(a) > 1 && a[0] == '-' && a[1] != '-' && strings.Contains(a[1:], opt):
			for j := i + 1; j < len(args); j++ {
				if !strings.HasPrefix(args[j].s, "-") {
					return j, true
				}
			}
			return 0, false
		case len(a) > 0 && a[0] != '-' && a[0] != '+':
			return 0, false // the first operand: no such option before it
		}
	}
	return 0, false
}

// hasShortOption reports a short option among the leading options.
func hasShortOption(args []word, opt byte) bool {
	for _, a := range args {
		s := a.s
		if s == "--" || len(s) < 2 || s[0] != '-' {
			return false
		}
		if s[1] != '-' && strings.IndexByte(s[1:], opt) >= 0 {
			return true
		}
	}
	return false
}

// skipOptions drops leading options, and the value of those in withValue
// given alone (-u root), up to the wrapped command.
func skipOptions(args []word, withValue string) []word {
	for len(args) > 0 {
		a := args[0].s
		if a == "--" {
			return args[1:]
		}
		if len(a) < 2 || a[0] != '-' {
			return args // the command, or NAME=value before it (env, sudo)
		}
		args = args[1:]
		if len(a) == 2 && strings.IndexByte(withValue, a[1]) >= 0 && len(args) > 0 {
			args = args[1:]
		}
	}
	return args
}

func isAssignment(w string) bool {
	i := strings.IndexByte(w, '=')
	if i <= 0 {
		return false
	}
	for j := 0; j < i; j++ {
		c := w[j]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || j > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// rawDevice reports a path naming a disk, partition or memory device,
// which a write would corrupt below any filesystem.
func rawDevice(p string) bool {
	p = path.Clean(p)
	if p == "/proc/sysrq-trigger" || p == "/dev/mem" || p == "/dev/kmem" || p == "/dev/port" {
		return true
	}
	for _, prefix := range []string{"/dev/sd", "/dev/hd", "/dev/vd", "/dev/xvd", "/dev/nvme", "/dev/mmcblk", "/dev/md", "/dev/dm-", "/dev/mapper/", "/dev/disk/", "/dev/loop"} {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// home is the server user's home directory, resolved once.
var home, _ = os.UserHomeDir()

var topLevel = set("/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/opt", "/proc", "/root", "/sbin", "/srv", "/sys", "/usr", "/var")

// critical reports a path whose recursive deletion, move or permission
// change wrecks the machine or the user's account: /, a home directory, a
// top-level system directory, or everything in one of them (/*). A glob
// (/e?c, /[e]tc) is critical when it could match one.
func critical(p string) bool {
	for _, h := range []string{"${HOME}", "$HOME", "~"} {
		if rest, ok := strings.CutPrefix(p, h); ok && (rest == "" || rest[0] == '/') {
			p = "/~" + rest
			break
		}
	}
	if strings.HasPrefix(p, "~") && !strings.Contains(p, "/") {
		return true // ~user, another user's home
	}
	p = path.Clean(p)
	for strings.HasSuffix(p, "/*") || strings.HasSuffix(p, "/.*") {
		p = path.Dir(p)
	}
	if p == "/" || p == "/~" || p == "/." || topLevel[p] || home != "" && home != "/" && p == path.Clean(home) {
		return true
	}
	if strings.ContainsAny(p, "*?[") {
		for t := range topLevel {
			if ok, _ := path.Match(p, t); ok {
				return true
			}
		}
		if ok, _ := path.Match(p, path.Clean(home)); ok && home != "" {
			return true
		}
	}
	return false
}
