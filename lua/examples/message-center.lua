-- The user message center of CONNMIX's docs (examples-message-center), serve it on
-- `path: /message-center`:
--   {"op":"auth","token":"***"}             asks the business auth endpoint for the token's uid and keeps
--                                            it in the connection's context (no answer is sent)
--   {"op":"subscribe","channel":"@user"}    subscribes user:<uid> -> {"result":true}
--   {"op":"unsubscribe","channel":"@user"}  -> {"result":true}
-- Before auth, (un)subscribing @user answers {"code":1,"msg":"Not Auth"}. Backends push to a user with
-- POST /v1/mesh/publish {"c":"user:1001","d":"..."} on any node.
--
-- The auth endpoint is the documented http://127.0.0.1:8000/websocket_auth unless the server has an
-- `auth_url` option (options: [{name: auth_url, value: http://...}]); the tests point it at their own
-- endpoint that way. Otherwise as documented, quirks included: the non-text branch calls conn:close()
-- before `conn` is defined (a Lua error: the engine closes that connection with 1011), and the auth
-- body '{"token:"<token>"}' is not valid JSON (sent as is).

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

    -- the api that turns a token into a uid
    local auth_url = mix.server.option("auth_url") or "http://127.0.0.1:8000/websocket_auth"
    local conn = mix.websocket()

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
    if op == "auth" then
        local token = data["token"]
        if token == nil then
            token = ""
        end
        -- x-www-form-urlencoded
        -- body = 'token=' .. token
        -- application/json
        -- body = '{"token:"' .. token .. '"}'
        local resp, err = mix.http.request("POST", auth_url, {
            body = '{"token:"' .. token .. '"}'
        })
        if err then
            mix_log(mix_DEBUG, "http.request error: " .. err)
            conn:close()
            return
        end
        if resp.status_code ~= 200 then
            mix_log(mix_DEBUG, "http.request status_code: " .. resp["status_code"])
            conn:close()
            return
        end
        local body_table, err = mix.json_decode(resp["body"])
        if err then
            mix_log(mix_DEBUG, "json_decode error: " .. err)
            conn:close()
            return
        end
        conn:set_context_value("uid", body_table["uid"])
        return
    end

    local uid = conn:context_value("uid")
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
    local channel_type = channel_table[2]

    if op == "subscribe" and channel_type == "user" then
        if uid == nil then
            conn:send('{"code":1,"msg":"Not Auth"}')
            return
        end
        local err = conn:subscribe("user:" .. uid)
        if err then
            mix_log(mix_DEBUG, "subscribe error: " .. err)
            conn:close()
            return
        end
    end

    if op == "unsubscribe" and channel_type == "user" then
        if uid == nil then
            conn:send('{"code":1,"msg":"Not Auth"}')
            return
        end
        local err = conn:unsubscribe("user:" .. uid)
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
