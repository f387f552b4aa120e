// Package policy decides every request: grants (RBAC with CEL conditions)
// compiled once per snapshot into a [Policy], and per-replica rate limits
// kept by a [Limiter].
//
// # Grants
//
// A grant binds a subject to a target with an effect (allow, deny,
// require_approval) and an optional CEL condition (when). [Policy.Decide]
// collects every grant whose subject, target and condition match a request:
// deny wins over require_approval, which wins over allow; no matching grant
// means deny. [Policy.Visible] answers the same question for lists, before
// any arguments exist.
//
// Subjects:
//
//   - agent NAME matches the authenticated agent NAME; agent "*" matches
//     every authenticated agent. Unauthenticated callers
//     ([identity.Anonymous], or a nil principal) are matched only by agent
//     "anonymous", and agent "anonymous" matches only them.
//   - team NAME and role NAME match authenticated principals with that team
//     or among whose roles NAME is.
//   - claim EXPR is a CEL bool expression over claims and principal. It
//     applies only to principals that carry identity-provider claims
//     (OIDC); API-key principals have none and are never matched by claim
//     subjects.
//
// Targets are the names the virtual server exposes: tool names, resource
// and resource template URIs, prompt names. Names are matched exactly and
// case-sensitively ("Read_File" is not "read_file"; a Cyrillic "е" is not
// a Latin "e"), with path.Match globs: "*" and "?" do not cross "/", so
// "file:///docs/*" covers "file:///docs/a.md" but not
// "file:///docs/sub/a.md". The lone pattern "*" covers every name of its
// kind, slashes included.
//
// # The condition language
//
// Conditions (when) and claim subjects are CEL (https://cel.dev). Claim
// subjects see principal and claims; conditions see all of:
//
//	principal  map: agent (string), team (string), roles (list of string),
//	           labels (map of string), method ("api_key", "oidc", "anonymous", ...),
//	           claims (map)
//	claims     the identity provider's claims (the same as principal.claims);
//	           an empty map for principals without claims
//	tool       map: name (exposed name or resource URI), upstream (string),
//	           kind ("tool", "resource", "prompt"), annotations (map; the MCP
//	           hints readOnlyHint, destructiveHint, idempotentHint and
//	           openWorldHint are always present, with MCP's defaults false,
//	           true, false, true when the tool does not declare them)
//	args       the call's arguments as decoded from JSON (numbers are doubles;
//	           int and double compare as numbers); an empty map for lists
//	request    map: time (timestamp), virtual_server (string), source_ip (string)
//
// Examples:
//
//	args.path.startsWith("/tmp/")
//	!("prod" in principal.roles) || tool.annotations.readOnlyHint
//	request.time.getHours("Europe/Berlin") >= 8 && request.time.getHours("Europe/Berlin") < 18
//	claims.groups.exists(g, g == "sre")
//	cidr("10.0.0.0/8").containsIP(request.source_ip)
//	args.?recipients.orValue([]).all(r, r.endsWith("@example.com"))
//
// Besides the standard definitions (including matches() with RE2 regular
// expressions, "in", the macros has, all, exists, exists_one, map, filter,
// and the timestamp accessors), expressions may use optional values
// (x.?f, m[?k], orValue), and cel-go's extensions for strings (lowerAscii,
// split, replace, join, ...), math (math.greatest, ...), networks (ip,
// cidr, containsIP) and cel.bind. The sets and lists extensions are left
// out: some of their functions are quadratic in agent-supplied input.
//
// Expressions are compiled once, by [Compile] or [CheckExpression], which
// reject syntax and type errors with their line:column, non-bool
// expressions, and fields that principal, tool or request do not have
// ("principal.tem"). Each evaluation is bounded by [CostLimit]: a
// condition over every element of an argument list is fine up to about a
// thousand elements; beyond, it fails (see below).
//
// # Evaluation errors fail closed
//
// An expression can still fail at run time: a missing key
// (args.path when the call has no path), a type mismatch, an exceeded cost
// limit. Such an error counts as "condition not met" for allow and
// require_approval grants, and as "matched" for deny grants: a deny that
// cannot be evaluated denies. The same holds for claim subjects (a token
// without the groups claim is denied by a deny grant over claims.groups).
// Use has(), optional values or "in" to write conditions that do not fail:
// has(claims.groups) && claims.groups.exists(...). The decision's Matched
// lists such a deny with the error in its Reason.
//
// # Lists
//
// [Policy.Visible] decides without arguments. A condition is static when it
// reads neither args nor request (except request.virtual_server); static
// conditions are evaluated exactly. A non-static condition might hold at
// call time: it counts as met for allow and require_approval, and a deny
// with a non-static condition does not hide anything (it may not apply). A matching deny without a condition, or
// with a static one that holds (or fails), hides. Time-of-day and
// source-address conditions are non-static on purpose: a list is cached by
// the client, the tool must not stay hidden after the window opens, and
// later calls of a session may come from another address.
//
// # Approval rules
//
// Approval rules ([config.ApprovalRule]) are compiled with the grants.
// [Policy.ApprovalRule] returns the rule that governs a call needing
// approval: the one [Decision.Approval] names, else the rule named
// "default", else [config.DefaultApprovalRule]. A rule with virtual_servers
// or tools also holds tool calls by itself: when the grants allow a tool
// call, the first such rule in name order whose globs match the virtual
// server and the exposed tool name, and whose when holds, turns the
// decision into require_approval (Decision.Approval names the rule, and
// Decision.Matched ends with it, as grant "approval_rule:NAME"). Deny and
// require_approval grants decide before any rule; a rule never allows
// anything, and never holds prompts or resources. A rule's when sees what a
// grant's sees and fails closed: an evaluation error holds the call. Lists
// are not filtered by rules: a call that needs approval is still visible.
//
// # Rate limits
//
// A [Limiter] keeps token buckets in memory, per replica: with N replicas
// behind a load balancer an agent may get up to N times a limit. See
// [Limiter] for keys and eviction.
package policy
