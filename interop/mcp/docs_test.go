package main

import (
	"os"
	"strings"
	"testing"
)

// TestDocQuotesServer: docs/mcp.md quotes server.go verbatim, so the MCP
// server a reader copies is the one TestMCP_TypeScriptSDK runs.
func TestDocQuotesServer(t *testing.T) {
	doc, err := os.ReadFile("../../docs/mcp.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("server.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```go\n"+string(src)+"```\n") {
		t.Error("docs/mcp.md does not quote interop/mcp/server.go verbatim: copy the file into its go block")
	}
}
