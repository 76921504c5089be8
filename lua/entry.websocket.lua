-- The video barrage of CONNMIX's "WebSocket video barrage" example (connmix >= v1.0.4), as written.
-- A viewer sends {"op":"subscribe","channel":"100001@video"}; this subscribes the connection to
-- video:100001 and answers {"result":true}. Backends publish comments to video:<id> through
-- POST /v1/mesh/publish on any node, and every subscribed viewer receives them.

local mix_log = mix.log
local mix_DEBUG = mix.DEBUG

function on_handshake(client_id, headers, server)
    --print(headers)
end

function on_message(msg)
     --print(msg)
     if msg["type"] ~= "text" then
         conn:close()
         return
     end

     local conn = mix. websocket()

     local data, err = mix.json_decode(msg["data"])
     if err then
         mix_log(mix_DEBUG, "json_decode error: " .. err)
         conn:close()
         return
     end

     local op = data["op"]
     if op == nil then
         mix_log(mix_DEBUG, "op is nil")
         conn:close()
         return
     end
     local channel_raw = data["channel"]
     if channel_raw == nil then
         channel_raw = ""
     end
     local channel_table = mix.str_split(channel_raw, "@")
     if table.getn(channel_table) ~= 2 then
         mix_log(mix_DEBUG, "invalid channel: " .. channel_raw)
         conn:close()
         return
     end
     local video_id = channel_table[1] --Lua's table index starts from 1 by default
     local channel_type = channel_table[2]
    
     if op == "subscribe" and channel_type == "video" then
         local err = conn:subscribe("video:" .. video_id)
         if err then
             mix_log(mix_DEBUG, "subscribe error: " .. err)
             conn:close()
             return
         end
     end
    
     if op == "unsubscribe" and channel_type == "video" then
         local err = conn:unsubscribe("video:" .. video_id)
         if err then
             mix_log(mix_DEBUG, "unsubscribe error: " .. err)
             conn:close()
             return
         end
     end

     conn:send('{"result":true}')
end

function on_close(client_id, err)
    --print(client_id, err)
end
