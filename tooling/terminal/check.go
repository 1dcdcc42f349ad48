package terminal

import (
	"os"
	"path"
	"regexp"
	"strings"
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
// words meant for the model. It looks through quoting, backslashes, paths
// (/bin/rm), wrappers (sudo, env, xargs, nohup, timeout…), every command of
// a list or pipeline, command and process substitutions, and scripts given
// to sh -c, eval or piped from echo into a shell.
//
// It is a guard against accidents and a model talked into something, not a
// sandbox: a determined script (a program written to a file, then run) gets
// past it. Words given to echo or printf are data: "echo rm -rf /" is
// allowed, "echo rm -rf / | sh" is not. Where parsing is unsure it errs
// towards refusing.
func Check(command string) (verdict Verdict, reason string) {
	c := checker{}
	c.script(command, 0)
	return c.verdict, c.reason
}

// maxDepth bounds nesting of sh -c, eval and substitutions; anything
// deeper is refused rather than half-checked.
const maxDepth = 8

type checker struct {
	verdict Verdict
	reason  string
}

// flag records a finding; the first of the most severe kind wins.
func (c *checker) flag(v Verdict, reason string) {
	if v > c.verdict {
		c.verdict, c.reason = v, reason
	}
}

var (
	// The fork bomb :(){ :|:& };: under any name, spacing removed.
	forkBomb = regexp.MustCompile(`([A-Za-z_:][A-Za-z0-9_:]*)\(\)\{([A-Za-z_:][A-Za-z0-9_:]*)\|([A-Za-z_:][A-Za-z0-9_:]*)&;?\}`)
	sqlDrop  = regexp.MustCompile(`(?i)\b(drop\s+(table|database|schema)|truncate\s+table)\b`)
	download = regexp.MustCompile(`\b(curl|wget|fetch|aria2c)\b`)
)

func (c *checker) script(src string, depth int) {
	if depth > maxDepth {
		c.flag(NeedsApproval, "it nests shells and substitutions too deeply to be checked")
		return
	}
	squeezed := strings.Join(strings.Fields(src), "")
	for _, m := range forkBomb.FindAllStringSubmatch(squeezed, -1) {
		if m[1] == m[2] && m[2] == m[3] {
			c.flag(Blocked, "it is a fork bomb")
		}
	}
	if sqlDrop.MatchString(src) {
		c.flag(NeedsApproval, "it drops or truncates database tables")
	}
	pipes, subs := lex(src)
	for _, p := range pipes {
		c.pipeline(p, subs, depth)
	}
	for _, s := range subs {
		c.script(s, depth+1)
	}
}

func (c *checker) pipeline(p pipeline, subs []string, depth int) {
	effs := make([][]string, len(p))
	for i, seg := range p {
		for _, r := range seg.redirs {
			c.redirect(r)
		}
		effs[i] = c.command(seg.words, subs, depth)
	}
	// A shell reading its script from the pipe runs whatever comes before.
	for j := 1; j < len(effs); j++ {
		if !readsScriptFromStdin(effs[j]) {
			continue
		}
		for i := 0; i < j; i++ {
			if len(effs[i]) == 0 {
				continue
			}
			switch name := base(effs[i][0]); name {
			case "curl", "wget", "fetch", "aria2c":
				c.flag(NeedsApproval, "it pipes a script downloaded from the network into a shell")
			case "echo", "printf":
				c.script(strings.Join(effs[i][1:], " "), depth+1)
			case "cat", "tee":
			default:
				c.flag(NeedsApproval, "it pipes generated text into a shell, so what runs cannot be checked")
			}
		}
	}
}

func (c *checker) redirect(r redirect) {
	if strings.HasPrefix(r.op, ">") || strings.HasPrefix(r.op, "&>") || r.op == "<>" {
		if rawDevice(r.target) {
			c.flag(Blocked, "it writes to the raw device "+r.target)
		}
	}
}

var (
	shells       = set("sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh")
	interpreters = set("python", "python2", "python3", "perl", "ruby", "node", "php")
	reserved     = set("!", "{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "time", "coproc")
	powerOff     = set("shutdown", "reboot", "halt", "poweroff")
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

// command checks one simple command and returns its effective words, the
// command that really runs once wrappers are peeled off.
func (c *checker) command(words []string, subs []string, depth int) []string {
	all := words
	for {
		for len(words) > 0 && (reserved[words[0]] || isAssignment(words[0])) {
			words = words[1:]
		}
		if len(words) == 0 {
			return nil
		}
		name := base(words[0])
		args := words[1:]
		switch name {
		case "sudo", "doas":
			c.flag(NeedsApproval, "it runs a command as root ("+name+")")
			words = skipOptions(args, "uUgghpCDrt")
			continue
		case "su":
			c.flag(NeedsApproval, "it switches user (su)")
			if s, ok := optionArg(args, "c"); ok {
				c.script(s, depth+1)
			}
			return words
		case "env":
			if s, ok := optionArg(args, "S"); ok {
				c.script(s, depth+1)
			}
			words = skipOptions(args, "uCS")
			continue
		case "nice", "ionice", "stdbuf", "nohup", "setsid", "command", "builtin", "exec", "unbuffer", "busybox", "caffeinate":
			words = skipOptions(args, "nncpoieEO")
			continue
		case "timeout":
			words = skipOptions(args, "sk")
			if len(words) > 0 {
				words = words[1:] // the duration
			}
			continue
		case "xargs":
			words = skipOptions(args, "IinPdLsEa")
			continue
		case "watch":
			c.script(strings.Join(skipOptions(args, "nd"), " "), depth+1)
			return words
		case "eval":
			c.script(strings.Join(args, " "), depth+1)
			return words
		}
		c.simple(name, args, depth)
		if shells[name] || interpreters[name] || name == "source" || name == "." || name == "eval" {
			for _, w := range all {
				for _, i := range subIndexes(w) {
					if i < len(subs) && download.MatchString(subs[i]) {
						c.flag(NeedsApproval, "it runs a script downloaded from the network")
					}
				}
			}
		}
		return words
	}
}

// simple checks a command with wrappers peeled off.
func (c *checker) simple(name string, args []string, depth int) {
	switch {
	case shells[name]:
		if s, ok := optionArg(args, "c"); ok {
			c.script(s, depth+1)
		}
	case name == "rm":
		c.rm(args)
	case name == "chmod", name == "chown", name == "chgrp":
		c.chmod(name, args)
	case name == "dd":
		for _, a := range args {
			if of, ok := strings.CutPrefix(a, "of="); ok && rawDevice(of) {
				c.flag(Blocked, "dd would overwrite the raw device "+of)
			}
		}
		c.flag(NeedsApproval, "dd writes raw bytes and can destroy data")
	case name == "mkfs" || strings.HasPrefix(name, "mkfs.") || name == "mke2fs" || name == "wipefs":
		c.flag(Blocked, "it formats or wipes a filesystem ("+name+")")
	case powerOff[name]:
		c.flag(Blocked, "it shuts down or reboots the machine ("+name+")")
	case name == "init" || name == "telinit":
		if len(args) > 0 && (args[0] == "0" || args[0] == "6") {
			c.flag(Blocked, "it shuts down or reboots the machine ("+name+" "+args[0]+")")
		}
	case name == "systemctl":
		for _, a := range args {
			if a == "poweroff" || a == "reboot" || a == "halt" || a == "kexec" {
				c.flag(Blocked, "it shuts down or reboots the machine (systemctl "+a+")")
			}
		}
	case name == "tee", name == "cp", name == "shred", name == "mv", name == "install":
		for _, a := range args {
			if rawDevice(a) {
				c.flag(Blocked, "it writes to the raw device "+a)
			}
		}
	case name == "kill":
		c.kill(args)
	case name == "pkill", name == "killall", name == "killall5":
		c.flag(NeedsApproval, "it kills processes by name, possibly ones the agent does not own ("+name+")")
	case name == "git":
		c.git(args)
	case name == "find":
		c.find(args, depth)
	}
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

func cutAny(s, chars string) (before, after string, ok bool) {
	if i := strings.IndexAny(s, chars); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

func (c *checker) kill(args []string) {
	if len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "--" {
		if args[0] == "-s" || args[0] == "-n" {
			args = args[min(2, len(args)):]
		} else {
			args = args[1:] // the signal
		}
	}
	for _, a := range args {
		if a == "-1" {
			c.flag(NeedsApproval, "it signals every process the server may signal (kill -1)")
		}
		if a == "1" {
			c.flag(NeedsApproval, "it signals process 1, the init of this machine or container")
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

func (c *checker) find(args []string, depth int) {
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-delete":
			c.flag(NeedsApproval, "find -delete deletes files")
		case "-exec", "-execdir", "-ok", "-okdir":
			j := i + 1
			for j < len(args) && args[j] != ";" && args[j] != "+" {
				j++
			}
			if i+1 < j {
				c.command(args[i+1:j], nil, depth+1)
			}
			i = j
		}
	}
}

// optionArg returns the argument of a short option given alone or in a
// cluster (-c, -lc, -S): the next word that is not an option.
func optionArg(args []string, opt string) (string, bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return "", false
		case a == "-o" || a == "+o": // shell option name follows
			i++
		case len(a) > 1 && a[0] == '-' && a[1] != '-' && strings.Contains(a[1:], opt):
			for _, b := range args[i+1:] {
				if !strings.HasPrefix(b, "-") {
					return b, true
				}
			}
			return "", false
		case len(a) > 0 && a[0] != '-' && a[0] != '+':
			return "", false // the first operand: no such option before it
		}
	}
	return "", false
}

// skipOptions drops leading options, and the value of those in withValue
// given alone (-u root), up to the wrapped command.
func skipOptions(args []string, withValue string) []string {
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			return args[1:]
		}
		if len(a) < 2 || a[0] != '-' {
			if isAssignment(a) {
				args = args[1:]
				continue
			}
			return args
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

// readsScriptFromStdin reports a shell or interpreter with no script
// argument, which runs what it reads from its input.
func readsScriptFromStdin(eff []string) bool {
	if len(eff) == 0 {
		return false
	}
	name := base(eff[0])
	if !shells[name] && !interpreters[name] {
		return false
	}
	if _, ok := optionArg(eff[1:], "c"); ok && shells[name] {
		return false
	}
	for _, a := range eff[1:] {
		if a == "-" {
			return true
		}
		if !strings.HasPrefix(a, "-") {
			return false // a script file
		}
		if name == "python" || name == "python3" || name == "python2" || name == "perl" || name == "ruby" || name == "node" || name == "php" {
			if a == "-c" || a == "-e" || a == "-m" || a == "-r" {
				return false
			}
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

// critical reports a path whose recursive deletion or permission change
// wrecks the machine or the user's account: /, a home directory, a
// top-level system directory, or everything in one of them (/*).
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
	return p == "/" || p == "/~" || p == "/." || topLevel[p] || home != "" && home != "/" && p == path.Clean(home)
}
