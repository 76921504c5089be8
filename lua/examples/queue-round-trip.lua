-- The queue round trip of CONNMIX's quick start (start-debug, v1.0.1): every message is pushed, as
-- {frame = msg}, to the node's memory queue topic `foo`; a backend consumes `foo` on every node through
-- /ws/v1 queue.pop and answers the client with mesh.send (send "test", receive "received: test").
-- The Lua never answers by itself.

local mix_log = mix.log
local mix_DEBUG = mix.DEBUG

function on_handshake(client_id, headers, server)
end

function on_close(client_id, err)
end

function on_message(msg)
    local conn = mix.websocket()
    local n, err = mix.queue.push("foo", { frame = msg })
    if err then
        mix_log(mix_DEBUG, "queue push error: " .. err)
        conn:close()
        return
    end
end
