-- The quick-start chat room of CONNMIX's docs (start-debug), serve it on `path: /chat`:
--   {"op":"join","room_id":1002}         joins room:1002 (leaving the previous room) -> {"status":"success"}
--   {"op":"send","msg":"Hello,World!"}   -> {"status":"success"}, then everyone in the room, the sender
--                                           included, gets {"client_id":"<sender>","msg":"Hello,World!"}
--   {"op":"quit"}                        leaves the room -> {"status":"success"}
-- Backends broadcast to a room with POST /v1/mesh/publish {"c":"room:1002","d":"..."} on any node.
--
-- Written as documented, quirks included: the room message is built by concatenation, so `msg` is not
-- JSON-escaped (a quote in it makes the frame invalid JSON); bad JSON and a missing op are ignored
-- (no answer, the connection stays); quit or send before any join concatenates nil, a Lua error that
-- closes the connection with 1011.

local mix_log = mix.log
local mix_DEBUG = mix.DEBUG

function on_handshake(client_id, headers, server)
end

function on_close(client_id, err)
end

function on_message(msg)
    -- parse the request
    local tb, err = mix.json_decode(msg["data"])
    if err then
        mix_log(mix_DEBUG, "json_decode error: " .. err)
        return
    end
    local conn = mix.websocket()
    local op = tb["op"]
    local room_id = tb["room_id"]
    local msg = tb["msg"]
    if op == nil then
        return
    end

    -- join a room
    if op == "join" then
        if room_id == nil then
            return
        end

        -- one room at a time
        local current_room_id = conn:context_value("current_room_id")
        if current_room_id ~= nil then
            conn:unsubscribe("room:" .. current_room_id)
        end

        conn:subscribe("room:" .. room_id)
        conn:set_context_value("current_room_id", room_id) -- remember the room joined
        conn:send('{"status":"success"}')
    end

    -- leave the room
    if op == "quit" then
        local current_room_id = conn:context_value("current_room_id")
        conn:unsubscribe("room:" .. current_room_id)
        conn:send('{"status":"success"}')
    end

    -- say something in the room
    if op == "send" then
        if msg == nil then
            return
        end
        local client_id = conn:client_id()
        local current_room_id = conn:context_value("current_room_id")
        conn:send('{"status":"success"}')
        mix.mesh.publish("room:" .. current_room_id, '{"client_id":"' .. client_id .. '","msg":"' .. msg .. '"}')
    end
end
