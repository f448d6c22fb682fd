-- wrk script: plain GETs of the URL; only the JSON report.
dofile("report.lua")
