-- Chat rooms: members join rooms by name and say something to a room; every member of that room, on
-- any node of the mesh, receives it, the sender too (its copy tells it the message went out, in the
-- room's order). A member may be in several rooms. Serve it on any path:
--   {"op":"join","room":"lobby"}                -> {"op":"joined","room":"lobby"}
--   {"op":"say","room":"lobby","text":"hello"}  -> every member of lobby gets
--                                                  {"op":"said","room":"lobby","from":"<sender's client_id>","text":"hello"}
--   {"op":"leave","room":"lobby"}               -> {"op":"left","room":"lobby"}
-- Anything else closes that connection: a binary frame, bad JSON, an unknown op, a room name that is
-- not 1 to 64 letters, digits, "_" or "-", a text that is not a string, a say in a room not joined.
-- Backends post to a room with POST /v1/mesh/publish {"c":"room:lobby","d":"..."} on any node.
-- The chat-room scenario of `npm run bench` runs this file. (chat-room.lua is CONNMIX's quick-start
-- room as documented, one room at a time; this one encodes with json_encode, so any text is safe.)

local mix_log = mix.log
local mix_DEBUG = mix.DEBUG

-- The room a request names, or nil when it is not a valid room name.
local function room_of(data)
    local room = data["room"]
    if type(room) ~= "string" or #room > 64 or not string.find(room, "^[%w_%-]+$") then
        return nil
    end
    return room
end

function on_handshake(client_id, headers, server)
end

function on_message(msg)
    local conn = mix.websocket()
    local data = nil
    if msg["type"] == "text" then
        data = mix.json_decode(msg["data"])
    end
    local room = type(data) == "table" and room_of(data)
    if not room then
        mix_log(mix_DEBUG, "chat: bad request")
        conn:close()
        return
    end

    -- The channel of the room, and the context key that says this member joined it.
    local channel = "room:" .. room
    local op = data["op"]
    if op == "join" then
        local err = conn:subscribe(channel)
        if err then
            mix_log(mix_DEBUG, "subscribe error: " .. err)
            conn:close()
            return
        end
        conn:set_context_value(channel, true)
        conn:send(mix.json_encode({op = "joined", room = room}))
    elseif op == "leave" then
        conn:unsubscribe(channel)
        conn:set_context_value(channel, nil)
        conn:send(mix.json_encode({op = "left", room = room}))
    elseif op == "say" and type(data["text"]) == "string" and conn:context_value(channel) then
        local said = mix.json_encode({op = "said", room = room, from = conn:client_id(), text = data["text"]})
        local _, _, err = mix.mesh.publish(channel, said)
        if err then
            -- The broker is unreachable: tell the sender, keep the connection.
            conn:send(mix.json_encode({op = "error", room = room, error = err}))
        end
    else
        mix_log(mix_DEBUG, "chat: bad op")
        conn:close()
    end
end

function on_close(client_id, err)
end
