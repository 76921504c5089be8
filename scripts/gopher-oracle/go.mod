module connmix-ts/gopher-oracle

go 1.19

require github.com/yuin/gopher-lua v1.1.1
