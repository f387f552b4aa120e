//go:build !nochdb

package chdb

// LowerEnginePriority is lowerEnginePriority, for the external tests.
var LowerEnginePriority = lowerEnginePriority
