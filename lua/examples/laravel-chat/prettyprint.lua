-- CONNMIX v1.0.1 installs kept their table printer at lua/prettyprint.lua, so v1.0.1 entries start with
-- require("prettyprint"). connmix-ts ships its own printer as utils.prettyprint; this file points there.
return require("utils.prettyprint")
