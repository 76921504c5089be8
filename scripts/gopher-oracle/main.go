// Command gopher-oracle runs Lua chunks on gopher-lua, the Lua of CONNMIX, and prints what each
// returned, one line per chunk, for scripts/gopher-diff.sh to hold against connmix-ts.
//
// Input (stdin): chunks separated by a line "----". Each runs in a fresh state with the standard
// libraries. Output: per chunk, tostring of each returned value joined by " | ", newlines written
// as \n; or "ERR: " and the error's first line.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

func main() {
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, chunk := range strings.Split(string(input), "\n----\n") {
		if strings.TrimSpace(chunk) != "" {
			fmt.Println(run(chunk))
		}
	}
}

func run(chunk string) string {
	L := lua.NewState()
	defer L.Close()
	base := L.GetTop()
	if err := L.DoString(chunk); err != nil {
		message := strings.SplitN(err.Error(), "\nstack traceback", 2)[0]
		return "ERR: " + strings.ReplaceAll(message, "\n", " ")
	}
	var values []string
	for i := base + 1; i <= L.GetTop(); i++ {
		values = append(values, L.ToStringMeta(L.Get(i)).String())
	}
	return strings.ReplaceAll(strings.Join(values, " | "), "\n", "\\n")
}
