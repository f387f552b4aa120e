package guard

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// Injection kinds.
const (
	KindInstructionOverride  = "instruction_override"
	KindRolePlay             = "role_play"
	KindSystemPrompt         = "system_prompt"
	KindPromptLeak           = "prompt_leak"
	KindSecrecy              = "secrecy"
	KindExfiltration         = "exfiltration"
	KindMarkdownExfiltration = "markdown_exfiltration"
	KindHTMLComment          = "html_comment"
	KindInstructionTag       = "instruction_tag"
	KindHiddenUnicode        = "hidden_unicode"
	KindZeroWidth            = "zero_width"
	KindBidiControl          = "bidi_control"
)

// Poisoning-only kinds.
const (
	KindModelInstruction = "model_instruction"
	KindSensitiveFile    = "sensitive_file"
	KindCrossTool        = "cross_tool"
)

// InjectionKinds lists the kinds [DetectInjection] reports.
var InjectionKinds = []string{
	KindInstructionOverride, KindRolePlay, KindSystemPrompt, KindPromptLeak, KindSecrecy, KindExfiltration,
	KindMarkdownExfiltration, KindHTMLComment, KindInstructionTag, KindHiddenUnicode, KindZeroWidth, KindBidiControl,
}

// PoisoningKinds lists the kinds [ScanToolDefinition] reports.
var PoisoningKinds = append(slices.Clone(InjectionKinds), KindModelInstruction, KindSensitiveFile, KindCrossTool)

// DetectInjection scores text for prompt injection and returns the signals
// it found. Each signal has a weight (its Match.Score):
//
//   - instruction overrides, the "ignore all previous instructions" family
//     in English, Spanish, French, German, Italian, Portuguese, Russian,
//     Chinese, Japanese and Korean, "new instructions:", "your real task
//     is": 0.4 to 0.9;
//   - fake chat-template and role markers ("<|im_start|>", "[INST]",
//     "<system>", a line starting "SYSTEM:"): 0.5 to 0.7, "Assistant:" 0.3;
//     tags addressing the model ("<IMPORTANT>"): 0.5;
//   - role play and jailbreak personas, prompt-leak requests, "do not tell
//     the user", instructions to send data to a URL or address: 0.35 to 0.7;
//   - markdown or HTML images whose URL carries data in its query: 0.75;
//     HTML comments addressing the model: 0.5;
//   - Unicode tag characters (U+E0000–E007F, emoji flags excepted) and
//     variation-selector runs: 0.95; zero-width characters 0.3, 0.5 from
//     three, 0.8 from eight; bidi overrides 0.6, other bidi controls 0.3
//     (0.2 in right-to-left text).
//
// The score combines the strongest signal of each kind as independent
// evidence: 1 − Π(1 − wₖ). One strong signal reaches the default threshold
// of 0.5; two weak ones of different kinds can.
func DetectInjection(text string) (score float64, matches []Match) {
	matches = appendInjection(nil, text, modeInjection)
	return combineScore(matches), matches
}

// appendInjection appends injection signals (mode injection) or injection
// and poisoning signals (mode poisoning).
func appendInjection(dst []Match, s string, mode uint8) []Match {
	if len(s) < 4 {
		return dst
	}
	base := len(dst)
	nonASCII := false
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			nonASCII = true
			break
		}
	}
	if nonASCII {
		dst = appendHiddenUnicode(dst, s)
		dst = appendCJKOverride(dst, s)
	}
	dst = appendPhrases(dst, s, mode)
	if strings.IndexByte(s, '<') >= 0 {
		dst = appendTags(dst, s, mode)
	}
	if strings.Contains(s, "[INST]") || strings.Contains(s, "[/INST]") {
		dst = appendLiteral(dst, s, "[INST]", KindSystemPrompt, 0.7)
		dst = appendLiteral(dst, s, "[/INST]", KindSystemPrompt, 0.7)
	}
	if strings.Contains(s, "<<SYS>>") {
		dst = appendLiteral(dst, s, "<<SYS>>", KindSystemPrompt, 0.7)
	}
	dst = appendRoleLines(dst, s)
	if strings.Contains(s, "![") {
		dst = appendMarkdownImages(dst, s)
	}
	if hasImgTag(s) {
		dst = appendHTMLImages(dst, s)
	}
	if mode == modePoisoning {
		dst = appendSensitiveFiles(dst, s)
	}
	if strings.Contains(s, "<!--") {
		dst = appendHTMLComments(dst, s, base)
	}
	ms := dst[base:]
	slices.SortFunc(ms, func(a, b Match) int { return a.Start - b.Start })
	return mergeSameKind(dst, base)
}

// mergeSameKind merges overlapping matches of one kind (two phrases of the
// instruction_override family over the same words) into one, keeping the
// higher weight. ms[base:] is sorted by start.
func mergeSameKind(dst []Match, base int) []Match {
	// last[k] is the index in out of the latest match of a kind; kinds are
	// few, so a linear table beats a map.
	var last [24]struct {
		kind string
		idx  int
	}
	nk := 0
	out := dst[:base]
	for _, m := range dst[base:] {
		k := 0
		for k < nk && last[k].kind != m.Kind {
			k++
		}
		if k < nk {
			if p := &out[last[k].idx]; p.End > m.Start {
				p.End = max(p.End, m.End)
				p.Score = max(p.Score, m.Score)
				continue
			}
		} else if nk < len(last) {
			last[nk].kind = m.Kind
			nk++
		} else {
			out = append(out, m)
			continue
		}
		out = append(out, m)
		last[k].idx = len(out) - 1
	}
	return out
}

// combineScore is 1 − Π(1 − wₖ) over the strongest match of each kind.
func combineScore(ms []Match) float64 {
	return combineScoreKinds(ms, nil)
}

func combineScoreKinds(ms []Match, kinds map[string]bool) float64 {
	var best [24]struct {
		kind string
		w    float64
	}
	n := 0
	for _, m := range ms {
		if kinds != nil && !kinds[m.Kind] {
			continue
		}
		k := 0
		for k < n && best[k].kind != m.Kind {
			k++
		}
		if k == n {
			if n == len(best) {
				continue
			}
			best[n].kind = m.Kind
			n++
		}
		best[k].w = max(best[k].w, m.Score)
	}
	p := 1.0
	for k := 0; k < n; k++ {
		p *= 1 - best[k].w
	}
	return 1 - p
}

func appendLiteral(dst []Match, s, lit, kind string, w float64) []Match {
	for off := 0; ; {
		k := strings.Index(s[off:], lit)
		if k < 0 {
			return dst
		}
		dst = append(dst, Match{kind, off + k, off + k + len(lit), w})
		off += k + len(lit)
	}
}

// appendHiddenUnicode finds invisible characters: Unicode tags (used to
// smuggle ASCII instructions), variation-selector runs (used to smuggle
// bytes after an emoji), zero-width characters and bidi controls.
func appendHiddenUnicode(dst []Match, s string) []Match {
	base := len(dst)
	zw := 0
	rtl := false
	type run struct{ start, end, n int }
	var tag, vs run
	tag.start, vs.start = -1, -1
	var prevRune rune
	flushTag := func() {
		if tag.start < 0 {
			return
		}
		// Subdivision flags (🏴 + tags + cancel tag U+E007F) are emoji.
		flag := tag.n <= 7 && prevRune == 0xE007F && strings.HasSuffix(s[:tag.start], "\U0001F3F4")
		if !flag {
			dst = append(dst, Match{KindHiddenUnicode, tag.start, tag.end, 0.95})
		}
		tag = run{start: -1}
	}
	flushVS := func() {
		if vs.start >= 0 && vs.n >= 2 {
			dst = append(dst, Match{KindHiddenUnicode, vs.start, vs.end, 0.95})
		}
		vs = run{start: -1}
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r >= 0xE0000 && r <= 0xE007F:
			if tag.start < 0 {
				tag.start = i
			}
			tag.end, tag.n = i+size, tag.n+1
		case r >= 0xFE00 && r <= 0xFE0F || r >= 0xE0100 && r <= 0xE01EF:
			flushTag()
			if vs.start < 0 {
				vs.start = i
			}
			vs.end, vs.n = i+size, vs.n+1
		default:
			flushTag()
			flushVS()
		}
		switch {
		case r == 0x200B || r == 0x2060 || r == 0x180E || r >= 0x2061 && r <= 0x2064 || r == 0xFEFF && i > 0:
			zw++
			dst = append(dst, Match{KindZeroWidth, i, i + size, 0})
		case r == 0x200C || r == 0x200D:
			// Joiners are part of emoji sequences and Indic and Arabic
			// scripts; between ASCII letters they only hide things.
			// A neighbouring invisible character counts as ASCII would:
			// once it is redacted, the placeholder's brackets are ASCII.
			next, _ := utf8.DecodeRuneInString(s[i+size:])
			if hidingContext(prevRune) && hidingContext(next) {
				zw++
				dst = append(dst, Match{KindZeroWidth, i, i + size, 0})
			}
		case r == 0x202D || r == 0x202E:
			dst = append(dst, Match{KindBidiControl, i, i + size, 0.6})
		case r >= 0x202A && r <= 0x202C || r >= 0x2066 && r <= 0x2069:
			dst = append(dst, Match{KindBidiControl, i, i + size, 0.3})
		case r >= 0x0590 && r <= 0x08FF || r >= 0xFB1D && r <= 0xFDFF || r >= 0xFE70 && r <= 0xFEFC:
			rtl = true
		}
		prevRune = r
		i += size
	}
	flushTag()
	flushVS()
	// Weigh zero-width characters by how many there are: one is likely a
	// copy-paste artifact, many encode a message.
	w := 0.3
	switch {
	case zw >= 8:
		w = 0.8
	case zw >= 3:
		w = 0.5
	}
	for k := base; k < len(dst); k++ {
		switch dst[k].Kind {
		case KindZeroWidth:
			if dst[k].Score == 0 {
				dst[k].Score = w
			}
		case KindBidiControl:
			if rtl {
				dst[k].Score = 0.2
			}
		}
	}
	return mergeAdjacent(dst, base, KindZeroWidth)
}

// mergeAdjacent merges touching matches of kind (runs of zero-width
// characters become one span).
func mergeAdjacent(dst []Match, base int, kind string) []Match {
	out := dst[:base]
	for _, m := range dst[base:] {
		if n := len(out); n > base && m.Kind == kind && out[n-1].Kind == kind && out[n-1].End == m.Start {
			out[n-1].End = m.End
			continue
		}
		out = append(out, m)
	}
	return out
}

// cjkOverride: "ignore" verbs and "instruction" nouns in scripts without
// spaces.
var (
	cjkIgnore = [...]string{"忽略", "忽视", "无视", "無視", "무시"}
	cjkInstr  = [...]string{"指令", "指示", "说明", "說明", "提示", "规则", "規則", "命令", "지시", "명령", "프롬프트"}
)

func appendCJKOverride(dst []Match, s string) []Match {
	for _, v := range cjkIgnore {
		for off := 0; ; {
			k := strings.Index(s[off:], v)
			if k < 0 {
				break
			}
			at := off + k
			off = at + len(v)
			lo, hi := max(0, at-36), min(len(s), at+len(v)+36)
			for lo > 0 && !utf8.RuneStart(s[lo]) {
				lo--
			}
			for hi < len(s) && !utf8.RuneStart(s[hi]) {
				hi++
			}
			for _, n := range cjkInstr {
				if j := strings.Index(s[lo:hi], n); j >= 0 {
					st, en := min(at, lo+j), max(at+len(v), lo+j+len(n))
					dst = append(dst, Match{KindInstructionOverride, st, en, 0.85})
					break
				}
			}
		}
	}
	return dst
}

// instructionTags are tag names that address the model in tool output or
// descriptions: <IMPORTANT>, <system>, <instructions>...
var instructionTags = map[string]string{
	"important": KindInstructionTag, "instructions": KindInstructionTag, "instruction": KindInstructionTag,
	"secret": KindInstructionTag, "hidden": KindInstructionTag, "critical": KindInstructionTag,
	"admin": KindInstructionTag, "ai_instructions": KindInstructionTag, "note_to_ai": KindInstructionTag,
	"assistant_instructions": KindInstructionTag, "system_instructions": KindSystemPrompt,
	"system": KindSystemPrompt, "system_prompt": KindSystemPrompt, "sys": KindSystemPrompt,
}

// chatTokens are special tokens of chat templates, written as <|name|>.
var chatTokens = map[string]bool{
	"im_start": true, "im_end": true, "system": true, "user": true, "assistant": true, "endoftext": true,
	"eot_id": true, "start_header_id": true, "end_header_id": true, "begin_of_text": true, "im_sep": true,
}

func appendTags(dst []Match, s string, mode uint8) []Match {
	for off := 0; ; {
		k := strings.IndexByte(s[off:], '<')
		if k < 0 {
			return dst
		}
		at := off + k
		off = at + 1
		j := at + 1
		if j < len(s) && s[j] == '|' {
			e := strings.Index(s[j+1:min(len(s), j+24)], "|>")
			if e > 0 && chatTokens[strings.ToLower(s[j+1:j+1+e])] {
				dst = append(dst, Match{KindSystemPrompt, at, j + 1 + e + 2, 0.7})
				off = j + 1 + e + 2
			}
			continue
		}
		if j < len(s) && s[j] == '/' {
			j++
		}
		n := runLen(s, j, func(c byte) bool { return isAlpha(c) || c == '_' || c == '-' })
		if n == 0 || n > 24 || j+n >= len(s) || s[j+n] != '>' {
			continue
		}
		var buf [24]byte
		name := buf[:0]
		for q := j; q < j+n; q++ {
			c := lower(s[q])
			if c == '-' {
				c = '_'
			}
			name = append(name, c)
		}
		kind, ok := instructionTags[string(name)]
		if !ok {
			continue
		}
		if kind == KindSystemPrompt && (s[j-1] != '/' && !proseFollows(s, j+n+1) || s[j-1] == '/' && !prosePrecedes(s, at)) {
			continue // <system><timezone>UTC</timezone></system> is configuration
		}
		w := 0.6
		if kind == KindInstructionTag && mode == modeInjection {
			w = 0.5
		}
		dst = append(dst, Match{kind, at, j + n + 1, w})
		off = j + n + 1
	}
}

// proseFollows reports whether text, not another tag, follows offset i.
func proseFollows(s string, i int) bool {
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
		i++
	}
	return i < len(s) && s[i] != '<'
}

// prosePrecedes reports whether text, not another tag, precedes offset i.
func prosePrecedes(s string, i int) bool {
	for i > 0 && (s[i-1] == ' ' || s[i-1] == '\n' || s[i-1] == '\t' || s[i-1] == '\r') {
		i--
	}
	return i > 0 && s[i-1] != '>'
}

// appendRoleLines finds lines that start with a role label: "SYSTEM:",
// "### System", "[system]"; "Assistant:" and "Human:" weakly.
func appendRoleLines(dst []Match, s string) []Match {
	for ls := 0; ls < len(s); {
		le := strings.IndexByte(s[ls:], '\n')
		if le < 0 {
			le = len(s)
		} else {
			le += ls
		}
		i := ls
		for i < le && i-ls < 8 && strings.IndexByte(" \t#*>[-", s[i]) >= 0 {
			i++
		}
		if i < le {
			switch lower(s[i]) {
			case 's':
				if hasPrefixFold(s, i, "system") {
					j := i + 6
					for _, w := range [...]string{" message", " prompt", " note", " override", " instruction", " instructions", " update"} {
						if hasPrefixFold(s, j, w) {
							j += len(w)
							break
						}
					}
					for j < le && (s[j] == ' ' || s[j] == '*' || s[j] == ']') {
						j++
					}
					if j < le && s[j] == ':' || j == le && strings.Contains(s[ls:i], "#") || j > i+6 && s[j-1] == ']' {
						dst = append(dst, Match{KindSystemPrompt, i, j, 0.5})
					}
				}
			case 'a', 'h':
				for _, w := range [...]string{"assistant:", "human:"} {
					if hasPrefixFold(s, i, w) {
						dst = append(dst, Match{KindSystemPrompt, i, i + len(w), 0.3})
					}
				}
			}
		}
		ls = le + 1
	}
	return dst
}

// appendMarkdownImages finds image links whose URL carries data: markdown
// "![alt](https://host/p?q=…)" and HTML <img src="…">. Rendering such an
// image sends its URL, so an injected image is an exfiltration channel. A
// URL counts when its query has a value of 16 or more characters, a
// template placeholder ({…}, <…>, $VAR, [DATA]) or much percent-encoding;
// badges ("?style=flat") do not.
func appendMarkdownImages(dst []Match, s string) []Match {
	for off := 0; ; {
		k := strings.Index(s[off:], "![")
		if k < 0 {
			break
		}
		at := off + k
		off = at + 2
		e := strings.Index(s[at+2:min(len(s), at+2+512)], "](")
		if e < 0 || strings.IndexByte(s[at+2:at+2+e], '\n') >= 0 {
			continue
		}
		u := at + 2 + e + 2
		end := u
		for end < len(s) && s[end] != ')' && s[end] != ' ' && s[end] != '\n' && end-u < 4096 {
			end++
		}
		if dataURL(s[u:end]) {
			close := end
			if close < len(s) && s[close] == ')' {
				close++
			}
			dst = append(dst, Match{KindMarkdownExfiltration, at, close, 0.75})
			off = close
		} else {
			off = max(off, end) // an image inside a URL is part of the URL
		}
	}
	if strings.Contains(s, "![") && strings.Contains(s, "]: ") {
		dst = appendImageReferences(dst, s)
	}
	return dst
}

// appendImageReferences checks reference definitions ("[1]: https://…")
// of reference-style images ("![alt][1]").
func appendImageReferences(dst []Match, s string) []Match {
	for off := 0; ; {
		k := strings.Index(s[off:], "]: ")
		if k < 0 {
			return dst
		}
		at := off + k
		off = at + 3
		ls := strings.LastIndexByte(s[:at], '\n') + 1
		for ls < at && s[ls] == ' ' {
			ls++
		}
		if ls >= at || s[ls] != '[' {
			continue
		}
		label := s[ls+1 : at]
		if label == "" || !strings.Contains(s, "]["+label+"]") {
			continue
		}
		u := at + 3
		end := u
		for end < len(s) && s[end] != ' ' && s[end] != '\n' && end-u < 4096 {
			end++
		}
		if dataURL(s[u:end]) {
			dst = append(dst, Match{KindMarkdownExfiltration, ls, end, 0.75})
		}
		off = end
	}
}

func hasImgTag(s string) bool {
	for off := 0; ; {
		k := strings.IndexByte(s[off:], '<')
		if k < 0 {
			return false
		}
		if hasPrefixFold(s, off+k, "<img") {
			return true
		}
		off += k + 1
	}
}

// appendHTMLImages finds <img src="…"> whose URL carries data (see
// appendMarkdownImages).
func appendHTMLImages(dst []Match, s string) []Match {
	for off := 0; ; {
		k := indexFold(s[off:], "<img")
		if k < 0 {
			break
		}
		at := off + k
		off = at + 4
		gt := strings.IndexByte(s[at:min(len(s), at+4096)], '>')
		if gt < 0 {
			continue
		}
		tag := s[at : at+gt+1]
		si := indexFold(tag, "src=")
		if si < 0 {
			continue
		}
		v := tag[si+4:]
		if v != "" && (v[0] == '"' || v[0] == '\'') {
			q := v[0]
			v = v[1:]
			if e := strings.IndexByte(v, q); e >= 0 {
				v = v[:e]
			}
		}
		if dataURL(v) {
			dst = append(dst, Match{KindMarkdownExfiltration, at, at + gt + 1, 0.75})
			off = at + gt + 1
		}
	}
	return dst
}

func dataURL(u string) bool {
	if !hasPrefixFold(u, 0, "http://") && !hasPrefixFold(u, 0, "https://") {
		return false
	}
	q := strings.IndexByte(u, '?')
	if q < 0 {
		// Placeholders in the path: https://evil/log/{secret}
		return strings.ContainsAny(u, "{}<>") || strings.Contains(u, "$")
	}
	query := u[q+1:]
	if strings.ContainsAny(query, "{}<>$") || strings.Contains(query, "[DATA]") || strings.Count(query, "%") >= 6 {
		return true
	}
	for kv := range strings.SplitSeq(query, "&") {
		v := kv
		if eq := strings.IndexByte(kv, '='); eq >= 0 {
			v = kv[eq+1:]
			if signingParam(kv[:eq]) {
				continue
			}
		}
		if len(v) >= 16 {
			return true
		}
	}
	return false
}

// signingParam reports whether a query parameter belongs to a presigned
// URL (S3, GCS, Azure SAS, CloudFront), whose long values are signatures
// rather than data. An attacker could hide data in them; the price of not
// flagging every presigned chart or thumbnail a tool returns.
func signingParam(k string) bool {
	switch {
	case hasPrefixFold(k, 0, "x-amz-"), hasPrefixFold(k, 0, "x-goog-"):
		return true
	}
	switch k {
	case "sig", "sv", "se", "sp", "st", "spr", "srt", "ss", "skoid", "sktid", "Signature", "Key-Pair-Id", "Policy", "Expires", "GoogleAccessId":
		return true
	}
	return false
}

// aiAddress are words by which a comment addresses a model.
var aiAddress = [...]string{"assistant", " ai ", " ai:", "ai,", "llm", "language model", "chatgpt", "claude", "copilot", "gemini", "agent", "model:", "instructions", "ignore", "do not tell", "don't tell"}

// appendHTMLComments finds HTML comments that address the model or contain
// other injection signals: invisible when rendered, read by the model.
func appendHTMLComments(dst []Match, s string, base int) []Match {
	for off := 0; ; {
		k := strings.Index(s[off:], "<!--")
		if k < 0 {
			return dst
		}
		at := off + k
		e := strings.Index(s[at+4:], "-->")
		end := len(s)
		if e >= 0 {
			end = at + 4 + e + 3
		}
		off = end
		flag := false
		for _, m := range dst[base:] {
			if m.Start >= at && m.End <= end && m.Kind != KindHTMLComment {
				flag = true
				break
			}
		}
		if !flag {
			body := strings.ToLower(s[at:end])
			for _, w := range aiAddress {
				if strings.Contains(body, w) {
					flag = true
					break
				}
			}
		}
		if flag {
			dst = append(dst, Match{KindHTMLComment, at, end, 0.5})
		}
	}
}

// sensitivePaths are files whose mention in a tool description is a
// poisoning signal ("read ~/.ssh/id_rsa and pass it as…").
var sensitivePaths = [...]string{
	"~/.ssh", ".ssh/", "id_rsa", "id_ed25519", "id_ecdsa", "id_dsa", "~/.aws", ".aws/credentials", "/etc/passwd", "/etc/shadow",
	".npmrc", ".netrc", ".pgpass", ".git-credentials", ".docker/config.json", ".kube/config", "mcp.json",
	"claude_desktop_config.json", "credentials.json", "wallet.dat", ".bash_history", ".zsh_history",
	"/proc/self/environ", ".gnupg", "keychain", "known_hosts", "authorized_keys",
}

func appendSensitiveFiles(dst []Match, s string) []Match {
	for _, p := range sensitivePaths {
		if k := indexFold(s, p); k >= 0 {
			end := k + len(p)
			for end < len(s) && (isWord(s[end]) || s[end] == '/' || s[end] == '.' || s[end] == '-') {
				end++
			}
			if !overlaps(dst, k, end) {
				dst = append(dst, Match{KindSensitiveFile, k, end, 0.45})
			}
		}
	}
	// ".env" as a file name, not "process.env.X" or ".environment".
	for off := 0; ; {
		k := strings.Index(s[off:], ".env")
		if k < 0 {
			break
		}
		at := off + k
		off = at + 4
		if (at+4 == len(s) || !isWord(s[at+4]) && s[at+4] != '.') && (at == 0 || s[at-1] == '/' || s[at-1] == ' ' || s[at-1] == '`' || s[at-1] == '\'' || s[at-1] == '"') {
			dst = append(dst, Match{KindSensitiveFile, at, at + 4, 0.45})
		}
	}
	return dst
}

// hidingContext reports whether r, next to a zero-width joiner or
// non-joiner, makes it suspicious: printable ASCII (joiners have no use
// there) or another invisible character.
func hidingContext(r rune) bool {
	if r < utf8.RuneSelf {
		return r > ' '
	}
	switch {
	case r == 0x200B || r == 0x200C || r == 0x200D || r == 0x2060 || r == 0x180E || r == 0xFEFF:
		return true
	case r >= 0x2061 && r <= 0x2064:
		return true
	}
	return false
}
