package terminal

import (
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// fileCheck checks one parsed script; scripts nested in it (sh -c, eval)
// get their own, sharing the checker.
type fileCheck struct {
	*checker
	src   string // what positions in the tree point into
	depth int    // nesting of scripts around this one
	// calls holds each command's effective words, known once walked.
	calls map[*syntax.CallExpr][]word
	// feeds are process substitutions run as scripts (bash <(…)).
	feeds []feed
}

// feed is text produced by commands that a shell or interpreter runs.
type feed struct {
	runner    string
	shell     bool // a POSIX-family shell, whose input can be checked
	producers []*syntax.Stmt
}

func (fc *fileCheck) file(f *syntax.File) {
	fc.forkBombs(f)
	var pipes []*syntax.BinaryCmd
	var stmts []*syntax.Stmt
	walk(f, func(n syntax.Node, stack []syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.CmdSubst, *syntax.ProcSubst, *syntax.Subshell:
			if fc.depth+nesting(stack)+1 > maxDepth {
				fc.flag(NeedsApproval, "it nests shells and substitutions too deeply to be checked")
				return false
			}
		case *syntax.CallExpr:
			fc.calls[n] = fc.command(fc.words(n.Args))
		case *syntax.Redirect:
			fc.redirect(n)
		case *syntax.Assign:
			if n.Name != nil && n.Value != nil {
				fc.assignment(n.Name.Value, fc.resolve(n.Value))
			}
		case *syntax.BinaryCmd:
			if n.Op == syntax.Pipe || n.Op == syntax.PipeAll {
				pipes = append(pipes, n)
			}
		case *syntax.Stmt:
			stmts = append(stmts, n)
		case *syntax.ParamExp:
			// ${x@P} expands a prompt string: bash runs the $(…) in x.
			if n.Exp != nil && n.Exp.Op == syntax.OtherParamOps && n.Exp.Word != nil && strings.Contains(n.Exp.Word.Lit(), "P") {
				fc.flag(NeedsApproval, "it expands a variable as a prompt (${…@P}), which runs the code inside it")
			}
		}
		return true
	})
	// Every command's effective words are known now: see what feeds a
	// shell or interpreter on its input.
	for _, s := range stmts {
		fc.stdin(s)
	}
	for _, p := range pipes {
		fc.pipe(p)
	}
	for i := 0; i < len(fc.feeds); i++ { // fed may add more
		fc.fed(fc.feeds[i].runner, fc.feeds[i].shell, fc.feeds[i].producers)
	}
}

// nesting counts the substitutions and subshells around a node.
func nesting(stack []syntax.Node) int {
	n := 0
	for _, s := range stack {
		switch s.(type) {
		case *syntax.CmdSubst, *syntax.ProcSubst, *syntax.Subshell:
			n++
		}
	}
	return n
}

// redirect blocks writes to raw devices and notes the files written.
func (fc *fileCheck) redirect(r *syntax.Redirect) {
	switch r.Op {
	case syntax.RdrOut, syntax.AppOut, syntax.RdrClob, syntax.AppClob, syntax.RdrAll, syntax.RdrAllClob,
		syntax.AppAll, syntax.AppAllClob, syntax.RdrInOut, syntax.DplOut:
		w := fc.resolve(r.Word)
		if r.Op == syntax.DplOut && (isDigits(w.s) || w.s == "-") {
			return // >&2: a descriptor, not a file
		}
		if rawDevice(w.s) {
			fc.flag(Blocked, "it writes to the raw device "+w.s)
		}
		fc.wrote(w)
	}
}

// effective returns the effective words of a statement's command, or nil
// when it is not a simple command.
func (fc *fileCheck) effective(s *syntax.Stmt) []word {
	if call, ok := s.Cmd.(*syntax.CallExpr); ok {
		return fc.calls[call]
	}
	return nil
}

// stdin checks what a shell or interpreter reads as its program from a
// redirection: a here-document, a here-string, or a file.
func (fc *fileCheck) stdin(s *syntax.Stmt) {
	runner, shell, ok := readsStdin(fc.effective(s))
	if !ok {
		return
	}
	for _, r := range s.Redirs {
		if isStdin(r) {
			fc.input(runner, shell, r)
		}
	}
}

// isStdin reports a redirection of standard input.
func isStdin(r *syntax.Redirect) bool {
	if r.N != nil && r.N.Value != "0" {
		return false
	}
	switch r.Op {
	case syntax.Hdoc, syntax.DashHdoc, syntax.WordHdoc, syntax.RdrIn, syntax.RdrInOut, syntax.DplIn:
		return true
	}
	return false
}

// input checks an input redirection whose text runner runs.
func (fc *fileCheck) input(runner string, shell bool, r *syntax.Redirect) {
	switch r.Op {
	case syntax.Hdoc, syntax.DashHdoc:
		fc.program(runner, shell, fc.heredoc(r))
	case syntax.WordHdoc:
		fc.program(runner, shell, fc.resolve(r.Word))
	case syntax.DplIn: // <&3: whatever was opened on that descriptor
		if fc.text(r.Word) != "-" {
			fc.flag(NeedsApproval, "it feeds "+runner+" a program from another descriptor, so what runs cannot be checked")
		}
	default: // < file: a script file
		fc.scriptArg(runner, fc.resolve(r.Word), shell)
	}
}

// heredoc is the text of a here-document: as written when its delimiter
// is quoted, with double-quote escapes and expansions otherwise.
func (fc *fileCheck) heredoc(r *syntax.Redirect) word {
	if r.Hdoc == nil {
		return word{lit: true}
	}
	var b strings.Builder
	quotedDelim := false
	for _, p := range r.Word.Parts {
		switch p := p.(type) {
		case *syntax.SglQuoted, *syntax.DblQuoted:
			quotedDelim = true
		case *syntax.Lit:
			quotedDelim = quotedDelim || strings.ContainsRune(p.Value, '\\')
		}
	}
	if quotedDelim {
		for _, p := range r.Hdoc.Parts {
			if l, ok := p.(*syntax.Lit); ok {
				b.WriteString(l.Value)
			}
		}
		return word{s: b.String(), lit: true, w: r.Hdoc}
	}
	lit := fc.parts(&b, r.Hdoc.Parts, true)
	return word{s: b.String(), lit: lit, w: r.Hdoc}
}

// program checks text a runner reads as its program: shell code is
// checked as a script; other languages cannot be.
func (fc *fileCheck) program(runner string, shell bool, text word) {
	if !shell {
		fc.flag(NeedsApproval, "it feeds "+runner+" a program on its input, which this guard cannot check")
		return
	}
	fc.code(runner+" input", text)
}

// pipe checks a pipeline whose right side reads its program from the
// pipe (curl … | sh, echo … | python3).
func (fc *fileCheck) pipe(b *syntax.BinaryCmd) {
	var producers []*syntax.Stmt
	var collect func(s *syntax.Stmt)
	collect = func(s *syntax.Stmt) {
		if p, ok := s.Cmd.(*syntax.BinaryCmd); ok && (p.Op == syntax.Pipe || p.Op == syntax.PipeAll) {
			collect(p.X)
			collect(p.Y)
			return
		}
		producers = append(producers, s)
	}
	collect(b.X)
	// Any reader inside the right side may be the one reading the pipe:
	// sh, (sh), { cd x; sh; }.
	syntax.Walk(b.Y, func(n syntax.Node) bool {
		s, ok := n.(*syntax.Stmt)
		if !ok {
			return true
		}
		for _, r := range s.Redirs {
			if isStdin(r) {
				return true // reads its redirection, checked on its own
			}
		}
		if runner, shell, ok := readsStdin(fc.effective(s)); ok {
			fc.fed(runner, shell, producers)
		}
		return true
	})
}

// fed checks what producers write into a runner's program: a download
// or text made at run time needs approval, echo'd shell code is checked,
// cat of a file is that file run as a script.
func (fc *fileCheck) fed(runner string, shell bool, producers []*syntax.Stmt) {
	for _, p := range producers {
		eff := fc.effective(p)
		if _, ok := p.Cmd.(*syntax.CallExpr); !ok {
			fc.flag(NeedsApproval, "it pipes generated text into "+runner+", so what runs cannot be checked")
			continue
		}
		if len(eff) == 0 {
			continue // assignments alone write nothing; an unknown name is flagged already
		}
		switch name := base(eff[0].s); {
		case downloaders[name]:
			fc.flag(NeedsApproval, "it pipes a script downloaded from the network into "+runner)
		case name == "echo" || name == "printf":
			fc.program(runner, shell, echoed(name, eff[1:]))
		case name == "cat" || name == "tee":
			for _, r := range p.Redirs {
				if isStdin(r) {
					fc.input(runner, shell, r)
				}
			}
			for _, a := range eff[1:] {
				if !strings.HasPrefix(a.s, "-") || a.s == "-" {
					fc.scriptArg(runner, a, shell)
				}
			}
		default:
			fc.flag(NeedsApproval, "it pipes generated text into "+runner+", so what runs cannot be checked")
		}
	}
}

// echoed is what echo or printf writes, as far as it is known: escapes
// (which dash's echo always reads) and printf formats make it unknown.
func echoed(name string, args []word) word {
	for len(args) > 0 && name == "echo" && (args[0].s == "-n" || args[0].s == "-e" || args[0].s == "-E") {
		args = args[1:]
	}
	out := word{s: strings.Join(texts(args), " "), lit: allLiteral(args)}
	if len(args) > 0 {
		out.w = args[0].w
	}
	if strings.ContainsRune(out.s, '\\') || name == "printf" && strings.ContainsRune(out.s, '%') {
		out.lit = false
	}
	return out
}

// forkBombs blocks functions that start copies of themselves in a pipe,
// in the background or in a subshell, directly or through each other:
// :(){ :|:& };: under any name, spacing or form.
func (fc *fileCheck) forkBombs(f *syntax.File) {
	funcs := map[string]bool{}
	var decls []*syntax.FuncDecl
	syntax.Walk(f, func(n syntax.Node) bool {
		if d, ok := n.(*syntax.FuncDecl); ok && d.Name != nil {
			funcs[d.Name.Value] = true
			decls = append(decls, d)
		}
		return true
	})
	type edge struct {
		to    string
		forks bool
	}
	calls := map[string][]edge{}
	for _, d := range decls {
		walk(d.Body, func(n syntax.Node, stack []syntax.Node) bool {
			call, ok := n.(*syntax.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			name, lit := fc.literal(call.Args[0])
			if lit && funcs[name] {
				calls[d.Name.Value] = append(calls[d.Name.Value], edge{name, forks(stack)})
			}
			return true
		})
	}
	var reaches func(from, to string, seen map[string]bool) bool
	reaches = func(from, to string, seen map[string]bool) bool {
		if from == to {
			return true
		}
		if seen[from] {
			return false
		}
		seen[from] = true
		for _, e := range calls[from] {
			if reaches(e.to, to, seen) {
				return true
			}
		}
		return false
	}
	for from, edges := range calls {
		for _, e := range edges {
			if e.forks && reaches(e.to, from, map[string]bool{}) {
				fc.flag(Blocked, "it is a fork bomb: function "+from+" starts copies of itself")
				return
			}
		}
	}
}

// forks reports a command that runs in a new process alongside its
// caller: in a pipeline, in the background, in a subshell or substitution.
func forks(stack []syntax.Node) bool {
	for _, n := range stack {
		switch n := n.(type) {
		case *syntax.BinaryCmd:
			if n.Op == syntax.Pipe || n.Op == syntax.PipeAll {
				return true
			}
		case *syntax.Stmt:
			if n.Background || n.Coprocess || n.Disown {
				return true
			}
		case *syntax.Subshell, *syntax.CmdSubst, *syntax.ProcSubst, *syntax.CoprocClause:
			return true
		}
	}
	return false
}
