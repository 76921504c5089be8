-- utils.prettyprint: makes print() show tables, as the library CONNMIX ships under lua/utils/ does.
-- require("utils.prettyprint") replaces the global print; tables print as { "key" = value, [1] = value },
-- keys sorted, nested tables indented, cycles shown as <cycle>.

local tostring, type, pairs, sort, concat, rep = tostring, type, pairs, table.sort, table.concat, string.rep
local plain_print = print

local function key_text(k)
    if type(k) == "string" then return string.format("%q", k) end
    return "[" .. tostring(k) .. "]"
end

local function render(value, depth, seen)
    if type(value) == "string" then return string.format("%q", value) end
    if type(value) ~= "table" then return tostring(value) end
    if seen[value] then return "<cycle>" end
    if depth > 16 then return "{ ... }" end
    seen[value] = true
    local keys = {}
    for k in pairs(value) do keys[#keys + 1] = k end
    sort(keys, function(a, b)
        if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
        return type(a) < type(b)
    end)
    if #keys == 0 then
        seen[value] = nil
        return "{}"
    end
    local pad = rep("  ", depth + 1)
    local lines = {}
    for i, k in ipairs(keys) do
        lines[i] = pad .. key_text(k) .. " = " .. render(value[k], depth + 1, seen)
    end
    seen[value] = nil
    return "{\n" .. concat(lines, ",\n") .. "\n" .. rep("  ", depth) .. "}"
end

print = function(...)
    local parts = {}
    local n = select("#", ...)
    for i = 1, n do
        parts[i] = render((select(i, ...)), 0, {})
        if type((select(i, ...))) == "string" then parts[i] = (select(i, ...)) end
    end
    plain_print(concat(parts, "\t", 1, n))
end

return { render = function(value) return render(value, 0, {}) end }
