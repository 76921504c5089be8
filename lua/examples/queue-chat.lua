-- The engine side of CONNMIX's laravel-chat example (connmix/examples laravel-chat/entry.lua), moved
-- from the v1.0.1 hook model (entry.lua, protocols/websocket, conn as the last argument) to today's
-- built-in websocket hooks. All the logic lives in a backend that consumes the `chat` topic on every
-- node; this script only forwards events to it:
--   on_handshake  {event = "handshake", headers = ...}
--   on_message    {event = "message", uid = <context uid>, frame = msg} (+ headers for op "auth")
--   on_close      {event = "close", uid = <context uid>}
-- For {"op":"auth",...} the script then waits until the backend sets the context value `uid`
-- (conn.call set_context_value, 0 for a failed login); until then this connection's later messages
-- wait behind it, so none reaches the backend before the login is decided.

local mix_log = mix.log
local mix_DEBUG = mix.DEBUG
local mix_ERROR = mix.ERROR
local queue_chat = "chat"
local auth_op = "auth"
local auth_key = "uid"

-- Pushes one event for the backend; a full queue closes the connection (the client reconnects).
local function push(conn, data)
    local n, err = mix.queue.push(queue_chat, data)
    if err then
        mix_log(mix_ERROR, "queue push error: " .. err)
        conn:close()
        return false
    end
    return true
end

function on_handshake(client_id, headers, server)
    local conn = mix.websocket()
    conn:set_context_value("headers", headers)
    push(conn, { event = "handshake", headers = headers })
end

function on_message(msg)
    if msg["type"] ~= "text" then
        return
    end
    local conn = mix.websocket()

    local tb, err = mix.json_decode(msg["data"])
    if err then
        mix_log(mix_DEBUG, "json_decode error: " .. err)
        return
    end

    local data = { event = "message", uid = conn:context_value(auth_key), frame = msg }
    if tb["op"] == auth_op then
        data["headers"] = conn:context_value("headers")
    end
    if not push(conn, data) then
        return
    end

    if tb["op"] == auth_op then
        conn:wait_context_value(auth_key)
    end
end

function on_close(client_id, err)
    local conn = mix.websocket()
    push(conn, { event = "close", uid = conn:context_value(auth_key) })
end
