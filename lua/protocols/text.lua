-- Newline-delimited text for `protocol: socket` servers: one packet per line. The packet includes its
-- "\n"; decode strips it and encode appends it. A line longer than 65535 bytes closes the connection.
--
--   local text = require("protocols.text")
--   function protocol_input(buf) return text.input(buf) end
--   function protocol_decode(str) return text.decode(str) end
--   function protocol_encode(str) return text.encode(str) end

local find = string.find
local sub = string.sub

local EOL = "\n"
local MAX_PACKET = 65535

local text = {}

-- The length of the first line, "\n" included (its 1-based end), 0 to wait for more input, -1 to close.
-- The buffer is scanned in growing slices rather than whole, so a burst of many short lines costs
-- time in proportion to the lines, not to the buffer once per line.
function text.input(buf)
    local slice = 64
    while buf:position() < buf:length() do
        local left = buf:length() - buf:position()
        local chunk = buf:read(left < slice and left or slice)
        local eol = find(chunk, EOL, 1, true)
        if eol then
            local length = buf:position() - #chunk + eol
            if length > MAX_PACKET then
                return -1
            end
            return length
        end
        if buf:position() >= MAX_PACKET then
            return -1
        end
        slice = slice * 2
    end
    return 0
end

-- The line without its "\n".
function text.decode(str)
    return sub(str, 1, -2)
end

function text.encode(str)
    return str .. EOL
end

return text
