//go:build !nochdb

package chdb

// LowerEnginePriority is lowerEnginePriority, for the external tests.
var LowerEnginePriority = lowerEnginePriority

// OnEngineThread is onEngineThread, for the external tests.
var OnEngineThread = onEngineThread
