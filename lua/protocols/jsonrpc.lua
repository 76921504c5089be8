-- Newline-delimited JSON requests for `protocol: socket` servers, framed like protocols.text. decode
-- gives the request table; a line that is not JSON, or lacks "method" or "params", closes the connection.
--
--   local jsonrpc = require("protocols.jsonrpc")
--   function protocol_input(buf) return jsonrpc.input(buf) end
--   function protocol_decode(str) return jsonrpc.decode(str) end
--   function protocol_encode(str) return jsonrpc.encode(str) end
--   ... mix.socket.tcp():send(jsonrpc.encode_table({ id = req.id, result = "ok" }))

local text = require("protocols.text")

local jsonrpc = {
    input = text.input,
    encode = text.encode,
}

function jsonrpc.decode(str)
    local request, err = mix.json_decode(text.decode(str))
    if err == nil and (type(request) ~= "table" or request["method"] == nil or request["params"] == nil) then
        err = "method or params missing"
    end
    if err then
        mix.log(mix.DEBUG, "jsonrpc: bad request: " .. err)
        mix.socket.tcp():close()
        return nil
    end
    return request
end

-- One JSON line: `str, err`.
function jsonrpc.encode_table(tb)
    local str, err = mix.json_encode(tb)
    if err then
        return nil, err
    end
    return str .. "\n", nil
end

return jsonrpc
