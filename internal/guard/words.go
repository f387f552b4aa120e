package guard

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Phrase matching over words.
//
// Injection and poisoning phrases ("ignore all previous instructions",
// "do not tell the user") are matched over words, not bytes: text is split
// into words once, each word is looked up in the vocabulary of all phrase
// words (lowercased; other words get id 0), and phrases are sequences of
// word sets with bounded gaps ("ignore ~3 @prev ~3 @instr": an ignore-verb,
// at most three other words, a previous-adjective, at most three words, an
// instruction noun). Benign text costs one tokenizing pass and a map lookup
// per word; phrases whose words are absent are skipped with a bitset test.
// Word order variants (Spanish "ignora las instrucciones anteriores") are
// separate phrases. Scripts without spaces (Chinese, Japanese) are handled
// by byte search in injection.go.

// Modes a phrase applies in.
const (
	modeInjection uint8 = 1 << iota
	modePoisoning
)

// macros are named word sets used in phrases as @name.
var macros = map[string]string{
	"ignore": "ignore ignores ignored ignoring disregard disregards disregarded disregarding forget forgets forgot forgotten override overrides overriding overridden supersede supersedes bypass bypasses bypassing neglect abandon discard skip " +
		"ignora ignorar ignorez ignorer ignoriere ignorieren ignoriert vergiss vergessen olvida olvide olvidar oublie oubliez oublier dimentica dimenticare esqueça esqueca " +
		"игнорируй проигнорируй игнорировать забудь забудьте",
	"prev": "previous prior preceding above earlier former foregoing original initial system developer your " +
		"anteriores previas precedentes précédentes antérieures vorherigen bisherigen obigen vorigen precedenti anteriori предыдущие прошлые",
	"allq":      "all any every todas todos toutes tous alle tutte tutti все",
	"instr":     "instructions instruction prompt prompts directions directives directive guidelines programming guardrails safeguards restrictions constraints policies policy training instrucciones indicaciones consignes anweisungen instruktionen vorgaben istruzioni instruções instrucoes инструкции указания",
	"instrweak": "rules context commands orders messages text conversation content guidance reglas règles regeln regole regras правила",
	"tell":      "tell inform mention reveal disclose notify alert show let warn explain",
	"human":     "user users human humans operator anyone them owner person",
	"ai":        "assistant model ai agent llm claude gpt chatgpt copilot gemini bot",
	"jb":        "dan unrestricted jailbroken uncensored unfiltered evil freed liberated unbound unlimited unchained stan",
	"reveal":    "reveal print show repeat output display leak dump expose disclose write tell give share recite",
	"sysadj":    "system initial hidden secret original developer your",
	"send":      "send post upload forward email transmit exfiltrate leak submit share copy append",
	"data":      "contents content data history conversation credentials credential keys key tokens token secrets secret password passwords env environment files file messages chat emails cookies session variables",
	"tool":      "tool tools function functions server servers service services integration integrations connector connectors plugin plugins mcp",
}

type phraseSpec struct {
	kind       string
	inj, poi   float64 // weight in each mode; 0: not used in that mode
	pattern    string
	postColon  bool // the byte after the last word (spaces skipped) is ':'
	postTarget bool // the next token is a URL or an email address
}

var phraseSpecs = []phraseSpec{
	// Instruction override ("ignore previous instructions" family).
	{kind: KindInstructionOverride, inj: 0.9, poi: 0.9, pattern: "@ignore ~3 @prev ~3 @instr|@instrweak"},
	{kind: KindInstructionOverride, inj: 0.9, poi: 0.9, pattern: "@ignore ~3 @instr ~2 @prev"},
	{kind: KindInstructionOverride, inj: 0.8, poi: 0.8, pattern: "@ignore ~1 @allq ~2 @instr"},
	{kind: KindInstructionOverride, inj: 0.55, poi: 0.55, pattern: "@ignore ~1 above|foregoing"},
	{kind: KindInstructionOverride, inj: 0.45, poi: 0.45, pattern: "@ignore ~2 @allq ~2 @instrweak"},
	{kind: KindInstructionOverride, inj: 0.8, poi: 0.8, pattern: "do|must|should|shall not follow|obey|heed ~3 @prev ~2 @instr|@instrweak"},
	{kind: KindInstructionOverride, inj: 0.8, poi: 0.8, pattern: "don't|dont|never|stop follow|obey|heed|following|obeying ~3 @prev ~2 @instr|@instrweak"},
	{kind: KindInstructionOverride, inj: 0.6, poi: 0.6, pattern: "new|updated|revised|real|actual|true|secret|hidden instructions|instruction|directive|directives|task|orders", postColon: true},
	{kind: KindInstructionOverride, inj: 0.65, poi: 0.65, pattern: "your new|real|actual|true task|goal|objective|purpose|job|mission|instructions|instruction is|are"},
	{kind: KindInstructionOverride, inj: 0.4, poi: 0.4, pattern: "from now on"},
	{kind: KindInstructionOverride, inj: 0.75, poi: 0.75, pattern: "previous|above|prior|earlier|original|system ~1 @instr|@instrweak ~1 were|was|are|is|have|has ~2 fake|wrong|false|void|cancelled|canceled|obsolete|revoked|outdated|incorrect|invalid|superseded|null|expired|replaced"},
	{kind: KindInstructionOverride, inj: 0.55, poi: 0.55, pattern: "forget|disregard everything|anything"},
	{kind: KindInstructionOverride, inj: 0.8, poi: 0.8, pattern: "forget|disregard ~1 everything|anything|all ~4 above|before|previous|prior|said|told|know|learned"},

	// Role play and jailbreak personas.
	{kind: KindRolePlay, inj: 0.7, poi: 0.7, pattern: "you are now ~3 @jb"},
	{kind: KindRolePlay, inj: 0.7, poi: 0.7, pattern: "you're|youre now ~3 @jb"},
	{kind: KindRolePlay, inj: 0.7, poi: 0.7, pattern: "you are|you're|youre no longer ~3 bound|restricted|limited|required|an|a|chatgpt|claude|assistant|ai"},
	{kind: KindRolePlay, inj: 0.4, poi: 0.4, pattern: "you are now a|an|the|my"},
	{kind: KindRolePlay, inj: 0.4, poi: 0.4, pattern: "pretend|imagine|roleplay ~2 you|to|that ~2 are|be|were|is|have"},
	{kind: KindRolePlay, inj: 0.35, poi: 0.35, pattern: "no|without|zero|any ~1 restrictions|limitations|limits|filters|filtering|censorship|ethics|morals|moral|ethical|boundaries"},
	{kind: KindRolePlay, inj: 0.6, poi: 0.6, pattern: "act|behave|respond|answer|reply as ~3 @jb"},
	{kind: KindRolePlay, inj: 0.6, poi: 0.6, pattern: "jailbreak|dan|god|unrestricted|sudo|evil|unfiltered|uncensored mode"},
	{kind: KindRolePlay, inj: 0.35, poi: 0.35, pattern: "developer mode"},
	{kind: KindRolePlay, inj: 0.6, poi: 0.6, pattern: "developer mode enabled|activated|engaged|on"},
	{kind: KindRolePlay, inj: 0.65, poi: 0.65, pattern: "do anything now"},
	{kind: KindRolePlay, inj: 0.45, poi: 0.45, pattern: "jailbreak|jailbroken|jailbreaking"},

	// Prompt leaking.
	{kind: KindPromptLeak, inj: 0.6, poi: 0.6, pattern: "@reveal ~4 @sysadj ~1 prompt|instructions|rules|guidelines|message|prompts"},
	{kind: KindPromptLeak, inj: 0.5, poi: 0.5, pattern: "what|whats ~1 is|are|was|were your system|initial|original prompt|instructions"},
	{kind: KindPromptLeak, inj: 0.5, poi: 0.5, pattern: "repeat|print|output|recite|dump ~2 text|words|content|everything|messages|lines ~1 above|before|preceding"},

	// Keeping things from the user.
	{kind: KindSecrecy, inj: 0.55, poi: 0.6, pattern: "do|must|should|shall|will not @tell ~3 @human"},
	{kind: KindSecrecy, inj: 0.55, poi: 0.6, pattern: "don't|dont|never @tell ~3 @human"},
	{kind: KindSecrecy, inj: 0.5, poi: 0.6, pattern: "without telling|informing|notifying|alerting|asking|letting|mentioning|showing|warning ~2 @human"},
	{kind: KindSecrecy, inj: 0.55, poi: 0.6, pattern: "keep|kept ~3 secret|hidden|confidential|private ~2 from ~2 @human"},
	{kind: KindSecrecy, inj: 0.5, poi: 0.6, pattern: "user|human ~2 not|never|doesn't|don't|cannot|can't ~3 know|notice|see|find"},
	{kind: KindSecrecy, inj: 0, poi: 0.45, pattern: "do|must|should not mention|reveal|disclose|tell|explain|say|notify ~3 this|that|it|anything"},

	// Exfiltration instructions.
	{kind: KindExfiltration, inj: 0.55, poi: 0.6, pattern: "@send ~6 @data ~8 to|at", postTarget: true},
	{kind: KindExfiltration, inj: 0.45, poi: 0.5, pattern: "include|append|add|embed|encode|put|insert ~6 in|into|to ~3 url|link|query|image|markdown|querystring"},
	{kind: KindExfiltration, inj: 0.5, poi: 0.55, pattern: "also send|bcc|cc|forward|copy ~4 to", postTarget: true},
	{kind: KindExfiltration, inj: 0.45, poi: 0.5, pattern: "send|upload|post|forward|transmit it|them|this|that|everything ~1 to|at", postTarget: true},

	// Tool-definition poisoning: instructions to the model.
	{kind: KindModelInstruction, poi: 0.3, pattern: "before using|calling|invoking|running|executing|use|call ~2 this|the|any|other|another ~1 @tool"},
	{kind: KindModelInstruction, poi: 0.3, pattern: "you|@ai ~1 must|should|needs|need|has|have|shall|is ~2 first|always|also|required|to ~2 read|call|invoke|send|pass|include|provide|fetch|run|use|execute|access|open|cat|load|get"},
	{kind: KindModelInstruction, poi: 0.35, pattern: "always|first|must|please|also ~2 read|call|invoke|send|pass|include|fetch|cat|open|upload|forward|bcc|cc|access|load|copy|attach|append"},
	{kind: KindModelInstruction, poi: 0.25, pattern: "otherwise|or|else ~3 will|would|may|might ~1 not|fail|crash|break|error|malfunction"},
	{kind: KindModelInstruction, poi: 0.45, pattern: "pass|provide|include|add|put|send|supply|attach ~6 content|contents|text|value|data|key|keys|file|output ~5 as|in|into|via|inside ~3 parameter|argument|field|sidenote|note|param|arg|variable|notes|comment|metadata"},
	{kind: KindModelInstruction, poi: 0.25, pattern: "this|it is ~2 important|critical|crucial|vital|mandatory"},
	{kind: KindModelInstruction, poi: 0.6, pattern: "pass|provide|include|add|put|send|supply|attach ~6 env|environment|credentials|credential|secret|secrets|token|tokens|password|passwords|key|keys ~6 as|in|into|via|inside ~3 parameter|argument|field|sidenote|note|param|arg|notes|comment|metadata"},

	// Tool-definition poisoning: other tools and their credentials.
	{kind: KindCrossTool, poi: 0.55, pattern: "api|access|auth|authentication|bearer|session|secret|private|oauth key|keys|token|tokens|credentials|cookie|cookies|header|headers|secrets ~6 of|from|for|used|belonging|by ~3 other|another|all|every|each|different ~2 @tool"},
	{kind: KindCrossTool, poi: 0.45, pattern: "credentials|tokens|keys|secrets|passwords ~6 other|another|all ~2 @tool"},
	{kind: KindCrossTool, poi: 0.5, pattern: "when|whenever|after|before the|a|any * tool|function is|gets|are|get called|used|invoked|run|executed|requested"},
	{kind: KindCrossTool, poi: 0.5, pattern: "the|that|other|another * tool|function must|should|shall|will ~1 always|never|also|now|send|use|include|add|forward|redirect|change|ignore"},
	{kind: KindCrossTool, poi: 0.5, pattern: "side effect|effects on ~4 @tool"},
	{kind: KindCrossTool, poi: 0.5, pattern: "all|every|any ~2 emails|email|messages|message|requests|calls|payments|transfers|transactions|invoices ~5 must|should|shall|will|need ~3 sent|redirected|forwarded|routed|copied|bcc|cc|addressed ~1 to"},
	{kind: KindCrossTool, poi: 0.45, pattern: "instead of|rather than ~3 @tool"},
	{kind: KindCrossTool, poi: 0.5, pattern: "change|modify|alter|replace|override|redirect ~4 behavior|behaviour|recipient|recipients|destination|parameters|arguments|address|target ~5 other|another|all|every|any ~2 @tool"},
}

type step struct {
	set []uint64 // bitset over word ids
	gap int      // words allowed between the previous step and this one
	any bool     // "*": any one word
}

func (st *step) has(id uint16) bool {
	return st.any || id != 0 && st.set[id>>6]&(1<<(id&63)) != 0
}

type phrase struct {
	phraseSpec
	steps []step
}

type phraseTable struct {
	vocab   map[string]uint16
	words   int
	maxLen  int // longest vocabulary word in bytes
	phrases []phrase
	// filter[len][first letter] has bit (last letter) set if an ASCII
	// vocabulary word has that length and those letters: most words of a
	// text are rejected without hashing.
	filter [32][26]uint32
}

var phrases = sync.OnceValue(func() *phraseTable {
	t := &phraseTable{vocab: map[string]uint16{}}
	id := func(w string) uint16 {
		if v, ok := t.vocab[w]; ok {
			return v
		}
		t.words++
		t.vocab[w] = uint16(t.words)
		t.maxLen = max(t.maxLen, len(w))
		if f, l := w[0], w[len(w)-1]; len(w) < 32 && isLower(f) && isLower(l) {
			t.filter[len(w)][f-'a'] |= 1 << (l - 'a')
		}
		return uint16(t.words)
	}
	type rawStep struct {
		ids []uint16
		gap int
		any bool
	}
	var raw [][]rawStep
	for _, ps := range phraseSpecs {
		var steps []rawStep
		gap := 0
		for f := range strings.FieldsSeq(ps.pattern) {
			if strings.HasPrefix(f, "~") {
				g, err := strconv.Atoi(f[1:])
				if err != nil {
					panic(fmt.Sprintf("guard: bad gap %q in phrase %q", f, ps.pattern))
				}
				gap = g
				continue
			}
			if f == "*" {
				steps = append(steps, rawStep{gap: gap, any: true})
				gap = 0
				continue
			}
			var ids []uint16
			for alt := range strings.SplitSeq(f, "|") {
				if strings.HasPrefix(alt, "@") {
					m, ok := macros[alt[1:]]
					if !ok {
						panic(fmt.Sprintf("guard: unknown macro %q in phrase %q", alt, ps.pattern))
					}
					for w := range strings.FieldsSeq(m) {
						ids = append(ids, id(w))
					}
					continue
				}
				ids = append(ids, id(alt))
			}
			steps = append(steps, rawStep{ids: ids, gap: gap})
			gap = 0
		}
		raw = append(raw, steps)
	}
	n := t.words/64 + 1
	for i, ps := range phraseSpecs {
		p := phrase{phraseSpec: ps}
		for _, rs := range raw[i] {
			st := step{set: make([]uint64, n), gap: rs.gap, any: rs.any}
			for _, w := range rs.ids {
				st.set[w>>6] |= 1 << (w & 63)
			}
			p.steps = append(p.steps, st)
		}
		t.phrases = append(t.phrases, p)
	}
	return t
})

// word is one word of a text: its byte span and vocabulary id (0 if none).
type word struct {
	start, end int32
	id         uint16
}

// tokenize splits s into words (letters, digits, '_' and inner
// apostrophes) and looks each up in the vocabulary. present collects the
// ids seen.
func (t *phraseTable) tokenize(dst []word, s string, present []uint64, scratch []byte) ([]word, []byte) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !isAlnum(c) && c != '_' {
				i++
				continue
			}
		} else if r, size := utf8.DecodeRuneInString(s[i:]); !unicode.IsLetter(r) {
			i += size
			continue
		}
		st := i
		ascii := true
		for {
			for i < len(s) && isWord(s[i]) {
				i++
			}
			if i >= len(s) {
				break
			}
			c := s[i]
			if c == '\'' && i > st && i+1 < len(s) && isAlpha(s[i+1]) {
				i++
				continue
			}
			if c < utf8.RuneSelf {
				break
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if unicode.IsLetter(r) || unicode.IsMark(r) || r == '\u2019' && i > st && i+size < len(s) && isAlpha(s[i+size]) {
				ascii = false
				i += size
				continue
			}
			break
		}
		w := word{start: int32(st), end: int32(i)}
		if ascii {
			n := i - st
			f, l := lower(s[st]), lower(s[i-1])
			if n >= 32 || !isLower(f) || !isLower(l) || t.filter[n][f-'a']&(1<<(l-'a')) == 0 {
				dst = append(dst, w)
				continue
			}
		}
		if i-st <= t.maxLen+2 {
			key := s[st:i]
			if !ascii || hasUpperASCII(key) {
				scratch = scratch[:0]
				for _, r := range key {
					if r == '\u2019' {
						r = '\''
					}
					scratch = utf8.AppendRune(scratch, unicode.ToLower(r))
				}
				w.id = t.vocab[string(scratch)]
			} else {
				w.id = t.vocab[key]
			}
			if w.id != 0 {
				present[w.id>>6] |= 1 << (w.id & 63)
			}
		}
		dst = append(dst, w)
	}
	return dst, scratch
}

func hasUpperASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if isUpper(s[i]) {
			return true
		}
	}
	return false
}

// possible reports whether every step of p has a word present in the text.
func (p *phrase) possible(present []uint64) bool {
	for k := range p.steps {
		if p.steps[k].any {
			continue
		}
		any := false
		for j, b := range p.steps[k].set {
			if b&present[j] != 0 {
				any = true
				break
			}
		}
		if !any {
			return false
		}
	}
	return true
}

// matchAt tries p with its first step at word i; it returns the index of
// the word matching the last step.
func (p *phrase) matchAt(words []word, i int) (int, bool) {
	return p.matchFrom(words, 1, i)
}

func (p *phrase) matchFrom(words []word, k, prev int) (int, bool) {
	if k == len(p.steps) {
		return prev, true
	}
	st := &p.steps[k]
	for j := prev + 1; j <= prev+1+st.gap && j < len(words); j++ {
		if st.has(words[j].id) {
			if end, ok := p.matchFrom(words, k+1, j); ok {
				return end, true
			}
		}
	}
	return 0, false
}

// appendPhrases appends the phrase matches of mode in s.
func appendPhrases(dst []Match, s string, mode uint8) []Match {
	t := phrases()
	sc := phraseScratchPool.Get().(*phraseScratch)
	defer phraseScratchPool.Put(sc)
	if len(sc.present) != t.words/64+1 {
		sc.present = make([]uint64, t.words/64+1)
	}
	clear(sc.present)
	sc.words, sc.buf = t.tokenize(sc.words[:0], s, sc.present, sc.buf)
	anyWord := false
	for _, b := range sc.present {
		anyWord = anyWord || b != 0
	}
	if !anyWord {
		return dst
	}
	words := sc.words
	for pi := range t.phrases {
		p := &t.phrases[pi]
		w := p.inj
		if mode == modePoisoning {
			w = p.poi
		}
		if w == 0 || !p.possible(sc.present) {
			continue
		}
		for i := 0; i < len(words); i++ {
			if !p.steps[0].has(words[i].id) {
				continue
			}
			last, ok := p.matchAt(words, i)
			if !ok {
				continue
			}
			end := int(words[last].end)
			if p.postColon && !nextByteIs(s, end, ':') {
				continue
			}
			if p.postTarget && !nextIsTarget(s, end) {
				continue
			}
			dst = append(dst, Match{Kind: p.kind, Start: int(words[i].start), End: end, Score: w})
			i = last
		}
	}
	return dst
}

type phraseScratch struct {
	words   []word
	present []uint64
	buf     []byte
}

var phraseScratchPool = sync.Pool{New: func() any { return new(phraseScratch) }}

func nextByteIs(s string, i int, c byte) bool {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i < len(s) && s[i] == c
}

// nextIsTarget reports whether the next token after i is a URL or an email
// address (where an exfiltration instruction sends data).
func nextIsTarget(s string, i int) bool {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ':' || s[i] == '"' || s[i] == '\'' || s[i] == '`' || s[i] == '<' || s[i] == '(') {
		i++
	}
	rest := s[i:]
	if hasPrefixFold(rest, 0, "http://") || hasPrefixFold(rest, 0, "https://") || hasPrefixFold(rest, 0, "www.") || hasPrefixFold(rest, 0, "ftp://") {
		return true
	}
	end := 0
	for end < len(rest) && end < 254 && rest[end] != ' ' && rest[end] != '\n' && rest[end] != '\t' {
		end++
	}
	tok := rest[:end]
	at := strings.IndexByte(tok, '@')
	return at > 0 && strings.IndexByte(tok[at:], '.') > 0
}
