-- CONNMIX's default entry.websocket.lua ("Hello World", docs: configuration-protocols): every message,
-- text or binary, is answered with the text Hello,World!. Serve it on `path: /chat`.
--
-- The shipped CONNMIX file starts with require("utils.prettyprint"), a third-party table printer bundled
-- with CONNMIX so that print(tbl) dumps tables. connmix-ts does not bundle it and nothing here prints,
-- so that line is left out; everything else is as documented.

local mix_log = mix.log
local mix_DEBUG = mix.DEBUG

function on_handshake(client_id, headers, server)
    --mix_log(mix_DEBUG, "on_handshake client_id: " .. client_id)
end

function on_close(client_id, err)
    --print(err)
end

function on_message(msg)
    --print(msg)
    local conn = mix.websocket()
    conn:send('Hello,World!')
end
