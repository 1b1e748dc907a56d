local security = require("security")
return { main = function() return security.actor():id() end }
