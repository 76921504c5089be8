-- A JSON-RPC style server on raw TCP (`protocol: socket`), one JSON object per line, framed by
-- protocols/jsonrpc.lua. To run it, copy it to lua/entry.socket.lua beside lua/protocols/ and point a
-- `protocol: socket` server at it. Requests and answers:
--   {"id":1,"method":"hello","params":["Ann"]}             {"id":1,"result":"Hello, Ann!"}
--   {"id":2,"method":"subscribe","params":["room:1"]}      {"id":2,"result":true}
--   {"id":3,"method":"publish","params":["room:1","hi"]}   {"id":3,"result":{"s":1,"f":0}}
-- and every subscriber of room:1 gets {"method":"message","params":["room:1","hi"]}.
-- A line that is not a request closes the connection; an unknown method gets an error answer.

local jsonrpc = require("protocols.jsonrpc")

local methods = {}

function methods.hello(params)
    return "Hello, " .. tostring(params[1]) .. "!"
end

function methods.subscribe(params, conn)
    local err = conn:subscribe(unpack(params))
    if err then
        return nil, err
    end
    return true
end

function methods.publish(params)
    local channel, message = params[1], params[2]
    local notification = mix.json_encode({ method = "message", params = { channel, message } })
    local s, f, err = mix.mesh.publish(channel, notification)
    if err then
        return nil, err
    end
    return { s = s, f = f }
end

function on_connect(client_id)
end

function on_close(client_id, err)
end

function protocol_input(buf)
    return jsonrpc.input(buf)
end

function protocol_decode(str)
    return jsonrpc.decode(str)
end

function protocol_encode(str)
    return jsonrpc.encode(str)
end

function on_message(request)
    local conn = mix.socket.tcp()
    local method = methods[request["method"]]
    local answer
    if not method then
        answer = { id = request["id"], error = { code = -32601, message = "method not found" } }
    else
        local result, err = method(request["params"], conn)
        if err then
            answer = { id = request["id"], error = { code = -32000, message = err } }
        else
            answer = { id = request["id"], result = result }
        end
    end
    conn:send(jsonrpc.encode_table(answer))
end
