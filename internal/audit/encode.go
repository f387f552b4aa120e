package audit

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// appendJSON appends e's JSON encoding, byte for byte what json.Marshal
// writes for an Event (fields in struct order, HTML characters, U+2028
// and U+2029 escaped, invalid UTF-8 as U+FFFD, times as
// time.Time.MarshalJSON writes them), without reflection: sealing
// encodes every audited call, and encoding/json's reflective walk was
// most of that cost. hashAt is the offset of the Hash string's closing
// quote. ok is false, and b is returned as it was, when e's time has no
// JSON encoding (a year outside 0–9999); json.Marshal then gives the
// error. TestAppendJSON holds this to json.Marshal over every field.
func appendJSON(b []byte, e *Event) (_ []byte, hashAt int, ok bool) {
	if y := e.Time.Year(); y < 0 || y > 9999 {
		return b, 0, false
	}
	if _, off := e.Time.Zone(); off <= -24*60*60 || off >= 24*60*60 {
		return b, 0, false
	}
	orig := len(b)
	b = append(b, `{"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","event_id":`...)
	b = AppendString(b, e.EventID)
	b = append(b, `,"node":`...)
	b = AppendString(b, e.Node)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"prev_hash":`...)
	b = AppendString(b, e.PrevHash)
	b = append(b, `,"hash":`...)
	b = AppendString(b, e.Hash)
	hashAt = len(b) - 1 - orig
	b = append(b, `,"kind":`...)
	b = AppendString(b, e.Kind)
	b = append(b, `,"request_id":`...)
	b = AppendString(b, e.RequestID)
	b = append(b, `,"session_id":`...)
	b = AppendString(b, e.SessionID)
	b = append(b, `,"agent":`...)
	b = AppendString(b, e.Agent)
	b = append(b, `,"team":`...)
	b = AppendString(b, e.Team)
	b = append(b, `,"roles":`...)
	b = appendStrings(b, e.Roles)
	b = append(b, `,"auth_method":`...)
	b = AppendString(b, e.AuthMethod)
	b = append(b, `,"virtual_server":`...)
	b = AppendString(b, e.VirtualServer)
	b = append(b, `,"upstream":`...)
	b = AppendString(b, e.Upstream)
	b = append(b, `,"method":`...)
	b = AppendString(b, e.Method)
	b = append(b, `,"target":`...)
	b = AppendString(b, e.Target)
	b = append(b, `,"arguments":`...)
	b = AppendString(b, e.Arguments)
	b = append(b, `,"args_hash":`...)
	b = AppendString(b, e.ArgsHash)
	b = append(b, `,"decision":`...)
	b = AppendString(b, e.Decision)
	b = append(b, `,"grants":`...)
	b = appendStrings(b, e.Grants)
	b = append(b, `,"rule":`...)
	b = AppendString(b, e.Rule)
	b = append(b, `,"policy_revision":`...)
	b = strconv.AppendInt(b, e.PolicyRevision, 10)
	b = append(b, `,"findings":`...)
	if e.Findings == nil {
		b = append(b, "null"...)
	} else {
		b = AppendFindings(b, e.Findings)
	}
	b = append(b, `,"approval_id":`...)
	b = AppendString(b, e.ApprovalID)
	b = append(b, `,"approvers":`...)
	b = appendStrings(b, e.Approvers)
	b = append(b, `,"secret_bindings":`...)
	b = appendStrings(b, e.SecretBindings)
	b = append(b, `,"lease_ids":`...)
	b = appendStrings(b, e.LeaseIDs)
	b = append(b, `,"outcome":`...)
	b = AppendString(b, e.Outcome)
	b = append(b, `,"error_code":`...)
	b = strconv.AppendInt(b, int64(e.ErrorCode), 10)
	b = append(b, `,"error":`...)
	b = AppendString(b, e.Error)
	b = append(b, `,"auth_us":`...)
	b = strconv.AppendUint(b, uint64(e.AuthUs), 10)
	b = append(b, `,"policy_us":`...)
	b = strconv.AppendUint(b, uint64(e.PolicyUs), 10)
	b = append(b, `,"guard_us":`...)
	b = strconv.AppendUint(b, uint64(e.GuardUs), 10)
	b = append(b, `,"approval_us":`...)
	b = strconv.AppendUint(b, e.ApprovalUs, 10)
	b = append(b, `,"upstream_us":`...)
	b = strconv.AppendUint(b, e.UpstreamUs, 10)
	b = append(b, `,"total_us":`...)
	b = strconv.AppendUint(b, e.TotalUs, 10)
	b = append(b, `,"request_bytes":`...)
	b = strconv.AppendUint(b, e.RequestBytes, 10)
	b = append(b, `,"response_bytes":`...)
	b = strconv.AppendUint(b, e.ResponseBytes, 10)
	return append(b, '}'), hashAt, true
}

// appendStrings appends l as json.Marshal writes a []string: null when
// nil.
func appendStrings(b []byte, l []string) []byte {
	if l == nil {
		return append(b, "null"...)
	}
	return AppendStrings(b, l)
}

// AppendStrings appends l as a JSON array of strings ([] when empty or
// nil).
func AppendStrings(b []byte, l []string) []byte {
	b = append(b, '[')
	for i, s := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, s)
	}
	return append(b, ']')
}

// AppendFindings appends fs as a JSON array of Finding objects, as
// json.Marshal writes them ([] when empty or nil).
func AppendFindings(b []byte, fs []Finding) []byte {
	b = append(b, '[')
	for i := range fs {
		f := &fs[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"rule":`...)
		b = AppendString(b, f.Rule)
		b = append(b, `,"detector":`...)
		b = AppendString(b, f.Detector)
		b = append(b, `,"kind":`...)
		b = AppendString(b, f.Kind)
		b = append(b, `,"path":`...)
		b = AppendString(b, f.Path)
		b = append(b, `,"action":`...)
		b = AppendString(b, f.Action)
		b = append(b, `,"start":`...)
		b = strconv.AppendUint(b, uint64(f.Start), 10)
		b = append(b, `,"end":`...)
		b = strconv.AppendUint(b, uint64(f.End), 10)
		b = append(b, '}')
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// plain holds the ASCII bytes encoding/json writes as they are.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// AppendString appends s as a JSON string, byte for byte as encoding/json
// writes it (HTML characters, U+2028 and U+2029 escaped, invalid UTF-8
// as U+FFFD).
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
