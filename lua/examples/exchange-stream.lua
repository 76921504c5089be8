-- The crypto-exchange market stream of CONNMIX's docs (examples-exchange-stream), serve it on
-- `path: /exchange-stream`. Public channels need no login and are used as given; private ones need
-- {"op":"auth","token":"***"} first (as in message-center.lua) and are made per user:
--   BTCUSDT@depth  BTCUSDT@trades  BTCUSDT@markprice  BTCUSDT@ticker  BTCUSDT@kline   -> ex:BTCUSDT@depth ...
--   @balance  @order  @position  @account                                          -> ex:<uid>@balance ...
-- {"op":"subscribe","channel":"..."} / {"op":"unsubscribe",...} answer {"result":true}, or
-- {"code":1,"msg":"Not Auth"} for a private channel before auth. Backends publish to the ex: channel on
-- any node, e.g. {"c":"ex:1001@balance","d":"..."}.
--
-- The auth endpoint is the documented http://127.0.0.1:8000/websocket_auth unless the server has an
-- `auth_url` option. Otherwise as documented, quirks included (see message-center.lua): a non-text
-- message is a Lua error (close 1011), the auth branch answers nothing, its body is not valid JSON.

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
    local inner_channel = ""
    if channel_type == "balance" or channel_type == "order" or channel_type == "position" or channel_type == "account" then
        -- private: login required
        if uid == nil then
            conn:send('{"code":1,"msg":"Not Auth"}')
            return
        end
        inner_channel = string.format("%d@%s", uid, channel_type)
    else
        inner_channel = channel_raw
    end

    -- a prefix keeps clients out of every other channel of the mesh
    local prefix = "ex:"

    if op == "subscribe" then
        local err = conn:subscribe(prefix .. inner_channel)
        if err then
            mix_log(mix_DEBUG, "subscribe error: " .. err)
            conn:close()
            return
        end
    end

    if op == "unsubscribe" then
        local err = conn:unsubscribe(prefix .. inner_channel)
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
